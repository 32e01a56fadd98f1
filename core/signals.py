"""Logins, logouts and failed logins of staff accounts in the audit trail.

Each becomes a ``core.AuditLog`` row with the account (when known), the
client's address and user agent. A failed login records the username that
was tried, never the password (Django hands receivers the credentials with
the password already replaced by stars; only the username is kept).
"""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from core.audit import client_ip
from core.models import AuditLog

USERNAME_MAX = 150


def _entry(request, action, account=None, success=True, new=None, error=None):
    meta = request.META if request is not None else {}
    return AuditLog.objects.create(
        actor=account,
        action=action,
        resource_type=account._meta.label_lower if account is not None else None,
        resource_id=str(account.pk) if account is not None else None,
        new_values=new,
        ip_address=client_ip(request) if request is not None else None,
        user_agent=meta.get("HTTP_USER_AGENT", "")[:1000] or None,
        success=success,
        error_message=error,
    )


def _tried_username(credentials):
    username = credentials.get("username") if credentials else None
    return str(username)[:USERNAME_MAX] if username else ""


@receiver(user_logged_in, dispatch_uid="core_audit_login")
def audit_login(sender, request, user, **kwargs):
    _entry(request, "login", user)


@receiver(user_logged_out, dispatch_uid="core_audit_logout")
def audit_logout(sender, request, user, **kwargs):
    # ``user`` is None when an anonymous visitor posts to the logout page.
    if user is not None:
        _entry(request, "logout", user)


@receiver(user_login_failed, dispatch_uid="core_audit_login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    _entry(
        request,
        "login_failed",
        success=False,
        new={"username": _tried_username(credentials)},
        error="wrong username or password, or account locked out",
    )


@receiver(user_locked_out, dispatch_uid="core_audit_locked_out")
def audit_locked_out(sender, request, username=None, ip_address=None, **kwargs):
    _entry(
        request,
        "login_locked_out",
        success=False,
        new={"username": (username or "")[:USERNAME_MAX]},
        error="too many failed logins: locked out",
    )
