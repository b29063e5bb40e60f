"""Sign-in for the dashboard: Streamlit's `st.login` / `st.user` / `st.logout`, roles and the audit log.

Two modes, decided by Streamlit's secrets (`retain dashboard` writes them from RETAIN_OIDC_*
variables, or you keep an `[auth]` section in `.streamlit/secrets.toml`):

- **Sign-in** (an `[auth]` section exists): a signed-out visitor gets only the sign-in page;
  a signed-in user gets the pages their roles allow (`dashboards/access.py`), or only a
  "no role" message.
- **Local** (no `[auth]`): one user, the person at this machine, with every role (or
  RETAIN_LOCAL_ROLES). Visitors from another machine are turned away unless the dashboard was
  started with `retain dashboard --allow-unauthenticated` (RETAIN_ALLOW_UNAUTHENTICATED=1).

`require_identity()` runs at the top of `app.py` on every rerun and stops the script for
anyone who may not see the pages. The identity is kept in the session (server side) for the
pages: `identity()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import streamlit as st

from dashboards import access
from pipelines import audit

_IDENTITY_KEY = "_retain_identity"
_AUDITED_KEY = "_retain_audited"
ALLOW_UNAUTHENTICATED_ENV = "RETAIN_ALLOW_UNAUTHENTICATED"


def auth_section() -> dict:
    """Streamlit's `[auth]` secrets as a dict, or {} when sign-in is not configured."""
    try:
        if not st.secrets.load_if_toml_exists():
            return {}
        section = st.secrets.get("auth")
    except Exception:  # a missing or unreadable secrets file means no sign-in configured
        return {}
    if not section:
        return {}
    return section.to_dict() if hasattr(section, "to_dict") else dict(section)


def providers(section: dict) -> list[str | None]:
    """Providers to offer: the named `[auth.<name>]` sections, else the default one (None)."""
    named = [name for name, value in section.items() if isinstance(value, dict) and "client_id" in value]
    return named or [None]


def allow_unauthenticated() -> bool:
    """Whether local mode may answer visitors from other machines (the operator forced it)."""
    return os.environ.get(ALLOW_UNAUTHENTICATED_ENV, "").strip().lower() in {"1", "true", "yes"}


def _remote_visitor() -> bool:
    """Whether this session's browser connected from another machine (Streamlit gives None for loopback)."""
    return isinstance(st.context.ip_address, str)  # (a test harness without a server has no address at all)


def _once(key: str) -> bool:
    """True the first time `key` is seen in this browser session."""
    seen = st.session_state.setdefault(_AUDITED_KEY, set())
    if key in seen:
        return False
    seen.add(key)
    return True


def _sign_in_page(section: dict) -> None:
    st.title("retain")
    st.subheader("Sign in to see the customer-retention dashboard")
    st.caption("You sign in with your organisation's account. What you can see depends on the role it gives you.")
    for provider in providers(section):
        label = "Sign in" if provider is None else f"Sign in with {provider.replace('_', ' ').title()}"
        if st.button(label, key=f"sign_in_{provider or 'default'}", type="primary", icon=":material/login:"):
            if provider:
                st.login(provider)
            else:
                st.login()


def _sign_out_button(key: str) -> None:
    if st.button("Sign out", key=key, icon=":material/logout:"):
        st.session_state.pop(_IDENTITY_KEY, None)
        st.logout()


def _stop_with(message: str, signed_in: bool) -> None:
    st.title("retain")
    st.warning(message, icon=":material/block:")
    if signed_in:
        _sign_out_button("sign_out_denied")
    st.stop()


def require_identity() -> access.Identity:
    """The identity of this session's user, or a sign-in / no-access page and `st.stop()`."""
    st.session_state.pop(_IDENTITY_KEY, None)
    try:
        settings = access.access_settings()
    except access.AccessConfigError as exc:
        st.title("retain")
        st.error(f"The dashboard's roles settings are wrong, so nobody can be let in: {exc}")
        st.stop()
    section = auth_section()
    if section:
        if not st.user.is_logged_in:
            _sign_in_page(section)
            st.stop()
        claims = st.user.to_dict()
        if access.signed_in_too_long(claims, settings.max_age_hours):
            _stop_with(f"Your sign-in is older than {settings.max_age_hours:g} hours: sign out and sign "
                                 "in again.", signed_in=True)
        who = access.oidc_identity(claims, settings)
    else:
        if _remote_visitor() and not allow_unauthenticated():
            _stop_with("This dashboard runs without sign-in (local mode), so it answers only on the "
                                 "machine it runs on. Configure sign-in to share it: see docs/security.md.",
                       signed_in=False)
        who = access.local_identity(settings)
    if not who.has_access:
        if _once(f"denied:{who.user}"):
            audit.record("access_denied", who.audit_fields(), reason="no role")
        _stop_with(f"You are signed in as {who.user}, but you have no role in retain, so there is "
                             "nothing to show. Ask the person who runs retain to give you one (viewer, marketer, "
                             "support or admin).", signed_in=True)
    if _once(f"session:{who.user}:{sorted(who.roles)}"):
        audit.record("session_start", who.audit_fields(), page=st.context.url or None)
    st.session_state[_IDENTITY_KEY] = who
    return who


def identity() -> access.Identity:
    """The identity `require_identity` admitted in this run (pages call it); stops if there is none."""
    who = st.session_state.get(_IDENTITY_KEY)
    if who is None:
        st.stop()
    return who


def sidebar(who: access.Identity) -> None:
    """Who is signed in, with which roles, and the sign-out button."""
    with st.sidebar:
        if who.mode == "local":
            st.caption(f"Local mode (no sign-in) · {who.user.removeprefix('local:')} · {who.describe_roles()}")
        else:
            st.caption(f"Signed in as **{who.user}** · {who.describe_roles()}")
            _sign_out_button("sign_out")


def record(action: str, **details) -> None:
    """Write an audit entry for this session's user."""
    audit.record(action, identity().audit_fields(), **details)


def recorder(action: str) -> Callable[[dict], None]:
    """An audit writer bound to this session's user, for code that runs outside the script (download callbacks)."""
    who, path = identity().audit_fields(), audit.audit_log_path()
    return lambda details: audit.record(action, who, path=path, **details)
