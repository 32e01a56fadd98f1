"""Write the audit trail (core.AuditLog) for what staff do in this site."""

import ipaddress

from django.conf import settings

from .models import AuditLog


def _address(value):
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request):
    """The client's address, as the audit trail and the login lockout see it.

    With ``TRUSTED_PROXY_COUNT`` = N reverse proxies in front of the site,
    each appending the address it was reached from to X-Forwarded-For, the
    client is the N-th address from the right: everything left of it was
    written by the client and proves nothing. With N = 0 (the default: no
    proxy) the header is ignored and the socket's address is the client's.
    A header shorter than N (a request that bypassed a proxy) or an entry
    that is not an address falls back to the socket's.
    """
    remote = _address(request.META.get("REMOTE_ADDR") or "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [
        part for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()
    ]
    if len(forwarded) < proxies:
        return remote
    return _address(forwarded[-proxies]) or remote


def record(request, action, obj=None, old=None, new=None, success=True, error=""):
    """One audit entry for the request's staff account.

    ``old``/``new`` are JSON-able dicts of the values that changed; callers
    mask secrets before they get here.
    """
    user = getattr(request, "user", None)
    return AuditLog.objects.create(
        actor=user if user is not None and user.is_authenticated else None,
        action=action,
        resource_type=obj._meta.label_lower if obj is not None else None,
        resource_id=str(obj.pk) if obj is not None else None,
        old_values=old,
        new_values=new,
        ip_address=client_ip(request),
        user_agent=request.headers.get("user-agent", "")[:1000] or None,
        success=success,
        error_message=error or None,
    )
