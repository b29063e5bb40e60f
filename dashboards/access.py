"""Who may see what on the dashboard: roles, where they come from, and what each allows.

Roles (see docs/security.md):

| role | may |
| --- | --- |
| `viewer` | every KPI page, the masked outreach previews, Customer 360 masked (search by id or whole email) |
| `marketer` | what a viewer may, plus the CRM downloads on the Outreach page |
| `support` | what a viewer may, plus Customer 360's contact details and email prefix search (both from the warehouse) |
| `admin` | all of the above (a shorthand for `viewer` + `marketer` + `support`) |

Roles add up: someone with `marketer` and `support` may do both. Every role includes `viewer`.
A signed-in user with none of them sees only a "no role" message: nothing is shown by default.

A user's roles come from two places, added together:

- the identity provider's token: the claim named by `RETAIN_ROLES_CLAIM` (default `roles`;
  `groups`, a dotted path such as `realm_access.roles`, or a namespaced name such as
  `https://retain.example/roles` work too). A value that is a role name is that role; other
  values (group ids, group names) count only if the mapping file maps them;
- the mapping file `RETAIN_ROLES` (YAML): `users` maps an email address to roles, `claims`
  maps a claim value (a group id, say) to roles. An email counts only if the provider did not
  say it is unverified (`email_verified: false`).

Local mode (no sign-in configured) has one user, the person at this machine, who holds every
role unless `RETAIN_LOCAL_ROLES` names fewer.

This module has no Streamlit in it: `dashboards/signin.py` reads `st.user` and calls it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

VIEWER, MARKETER, SUPPORT, ADMIN = "viewer", "marketer", "support", "admin"
#: The roles a user can hold, in the order they are shown.
ROLES = (VIEWER, MARKETER, SUPPORT)
#: Names accepted in claims, the mapping file and RETAIN_LOCAL_ROLES, and what each grants.
ROLE_GRANTS: dict[str, frozenset[str]] = {
    VIEWER: frozenset({VIEWER}),
    MARKETER: frozenset({VIEWER, MARKETER}),
    SUPPORT: frozenset({VIEWER, SUPPORT}),
    ADMIN: frozenset(ROLES),
}
DEFAULT_ROLES_CLAIM = "roles"
#: Hours after signing in at the provider after which the dashboard asks to sign in again.
DEFAULT_SIGNIN_MAX_AGE_HOURS = 12.0


class AccessConfigError(ValueError):
    """A roles setting (mapping file, claim name, local roles) is wrong: says which and how."""


@dataclass(frozen=True)
class Identity:
    """The person using the dashboard in this session and what they may do."""

    user: str  # an email address, or `local:<os user>` in local mode
    mode: str  # "oidc" or "local"
    roles: frozenset[str] = field(default_factory=frozenset)
    subject: str | None = None  # the provider's `sub`
    issuer: str | None = None

    @property
    def has_access(self) -> bool:
        """Whether the user may see anything beyond the "no role" message."""
        return VIEWER in self.roles

    @property
    def can_download(self) -> bool:
        """CRM downloads (the unmasked list of a play)."""
        return MARKETER in self.roles

    @property
    def can_see_contacts(self) -> bool:
        """Customer 360's contact details, and search by the beginning of an email (both read the warehouse)."""
        return SUPPORT in self.roles

    def describe_roles(self) -> str:
        """'viewer, marketer' (or 'no role')."""
        return ", ".join(r for r in ROLES if r in self.roles) or "no role"

    def audit_fields(self) -> dict:
        """Who, for an audit log entry."""
        return {"user": self.user, "mode": self.mode, "subject": self.subject, "issuer": self.issuer,
                "roles": sorted(self.roles)}


def grant(names) -> frozenset[str]:
    """The roles that a list of role names grants ('admin' → all; unknown names grant nothing)."""
    out: set[str] = set()
    for name in names:
        out |= ROLE_GRANTS.get(str(name).strip().lower(), frozenset())
    return frozenset(out)


def _as_list(value) -> list[str]:
    """A claim or mapping value as a list of strings: a list, or one string of comma/space-separated names."""
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return [str(v) for v in value if v is not None]
    return [v for v in str(value).replace(",", " ").split() if v]


@dataclass(frozen=True)
class RoleMapping:
    """The `RETAIN_ROLES` file: email → roles and claim value → roles."""

    users: dict[str, frozenset[str]] = field(default_factory=dict)
    claims: dict[str, frozenset[str]] = field(default_factory=dict)
    source: str | None = None


def _check_names(names: list[str], where: str) -> frozenset[str]:
    unknown = [n for n in names if n.strip().lower() not in ROLE_GRANTS]
    if unknown:
        raise AccessConfigError(f"{where}: unknown role {unknown[0]!r}; use one of {', '.join(ROLE_GRANTS)}")
    return grant(names)


def load_role_mapping(path: str | Path | None) -> RoleMapping:
    """Read and check the mapping file (None or an empty path: no mapping).

    The file looks like::

        users:                       # email address → role or list of roles
          ana@shop.example: admin
          ben@shop.example: [marketer, support]
        claims:                      # a value of the roles claim (e.g. a group id) → roles
          0b1c7f3e-entra-group-id: marketer
    """
    if not path:
        return RoleMapping()
    path = Path(path).expanduser()
    if not path.is_file():
        raise AccessConfigError(f"RETAIN_ROLES={path}: no such file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AccessConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) - {"users", "claims"}:
        raise AccessConfigError(f"{path}: expected a mapping with the keys 'users' and/or 'claims'")
    sections = {}
    for key in ("users", "claims"):
        section = doc.get(key) or {}
        if not isinstance(section, dict):
            raise AccessConfigError(f"{path}: '{key}' must map names to roles, e.g. {{ana@shop.example: viewer}}")
        sections[key] = {
            (str(name).strip().lower() if key == "users" else str(name).strip()):
                _check_names(_as_list(value), f"{path}: {key}: {name}")
            for name, value in section.items()
        }
    return RoleMapping(users=sections["users"], claims=sections["claims"], source=str(path))


def claim_value(claims: dict, name: str):
    """The claim `name`: by its exact name first (namespaced claims contain dots), else as a dotted path."""
    if name in claims:
        return claims[name]
    value = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def roles_from_claims(claims: dict, claim_name: str = DEFAULT_ROLES_CLAIM,
                      mapping: RoleMapping | None = None) -> frozenset[str]:
    """The roles of a signed-in user from their ID token claims and the mapping file."""
    mapping = mapping or RoleMapping()
    roles: set[str] = set()
    for value in _as_list(claim_value(claims, claim_name)):
        roles |= mapping.claims.get(value, grant([value]))
    email = str(claims.get("email") or "").strip().lower()
    if email and claims.get("email_verified") is not False:
        roles |= mapping.users.get(email, frozenset())
    return frozenset(roles)


def user_name(claims: dict) -> str:
    """How the audit log and the sidebar name a signed-in user: email, else username, else subject."""
    for key in ("email", "preferred_username", "upn", "sub"):
        if claims.get(key):
            return str(claims[key])
    return "unknown"


def signed_in_too_long(claims: dict, max_age_hours: float, now: datetime | None = None) -> bool:
    """Whether the sign-in (the ID token's `iat`) is older than `max_age_hours` (0: never)."""
    issued = claims.get("iat")
    if not max_age_hours or issued is None:
        return False
    try:
        issued_at = datetime.fromtimestamp(float(issued), UTC)
    except (TypeError, ValueError, OverflowError):
        return True
    return ((now or datetime.now(UTC)) - issued_at).total_seconds() > max_age_hours * 3600


@dataclass(frozen=True)
class AccessSettings:
    """The roles settings of this process, from the environment."""

    claim: str = DEFAULT_ROLES_CLAIM
    mapping: RoleMapping = field(default_factory=RoleMapping)
    local_roles: frozenset[str] = frozenset(ROLES)
    max_age_hours: float = DEFAULT_SIGNIN_MAX_AGE_HOURS


def access_settings() -> AccessSettings:
    """RETAIN_ROLES_CLAIM, RETAIN_ROLES, RETAIN_LOCAL_ROLES and RETAIN_SIGNIN_MAX_AGE_HOURS, checked."""
    claim = os.environ.get("RETAIN_ROLES_CLAIM", "").strip() or DEFAULT_ROLES_CLAIM
    local = os.environ.get("RETAIN_LOCAL_ROLES", "").strip()
    local_roles = _check_names(_as_list(local), "RETAIN_LOCAL_ROLES") if local else frozenset(ROLES)
    raw_age = os.environ.get("RETAIN_SIGNIN_MAX_AGE_HOURS", "").strip()
    try:
        max_age = float(raw_age) if raw_age else DEFAULT_SIGNIN_MAX_AGE_HOURS
        if max_age < 0:
            raise ValueError
    except ValueError as exc:
        raise AccessConfigError(
            f"RETAIN_SIGNIN_MAX_AGE_HOURS={raw_age!r}: expected a number of hours (0 keeps sign-ins for 30 days)"
        ) from exc
    return AccessSettings(claim=claim, mapping=load_role_mapping(os.environ.get("RETAIN_ROLES", "").strip() or None),
                          local_roles=local_roles, max_age_hours=max_age)


def oidc_identity(claims: dict, settings: AccessSettings) -> Identity:
    """The identity of a user signed in through the provider, with their roles."""
    return Identity(user=user_name(claims), mode="oidc",
                    roles=roles_from_claims(claims, settings.claim, settings.mapping),
                    subject=str(claims["sub"]) if claims.get("sub") else None,
                    issuer=str(claims["iss"]) if claims.get("iss") else None)


def local_identity(settings: AccessSettings) -> Identity:
    """The single user of local mode: the account running the dashboard, with RETAIN_LOCAL_ROLES (default all)."""
    import getpass

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Identity(user=f"local:{who}", mode="local", roles=settings.local_roles)
