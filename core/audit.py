"""Write the audit trail (core.AuditLog) for what staff do in this site."""

from .models import AuditLog


def client_ip(request):
    """The client address as the reverse proxy or the socket gives it."""
    forwarded = request.headers.get("x-forwarded-for", "")
    address = forwarded.split(",")[0].strip() if forwarded else request.META.get("REMOTE_ADDR")
    return address or None


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
