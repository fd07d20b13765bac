"""Who may write to a repo: a bearer token the hub made for the repo's owner (SPEC §10).
Reads need none (`muse clone` never sends one)."""

from ..hub import Hub
from ..hub.repos import token_owner
from .wire import BadRequest


def authorize_write(hub: Hub, authorization: str | None, owner: str) -> None:
    """Refuses (401: no token, or not one the hub made; 403: another owner's) a write to one of
    `owner`'s repos. The token is never put into a message or a log."""
    scheme, _, token = (authorization or "").partition(" ")
    if not authorization:
        raise BadRequest(f"writing to {owner}'s repos needs a token: Authorization: Bearer <token>", 401)
    if scheme.lower() != "bearer" or not token.strip():
        raise BadRequest("the Authorization header must be 'Bearer <token>'", 401)
    holder = token_owner(hub, token.strip())
    if holder is None:
        raise BadRequest("the token is not one this hub made (hub-assets token create OWNER)", 401)
    if holder != owner:
        raise BadRequest(f"the token writes to {holder}'s repos, not to {owner}'s", 403)
