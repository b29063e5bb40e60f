"""How `retain dashboard` starts Streamlit: sign-in settings, the secrets file, and where it may listen.

Sign-in (OpenID Connect through Streamlit's `st.login`) is configured either by

- the `RETAIN_OIDC_*` variables: `retain dashboard` writes them as Streamlit secrets into
  `$RETAIN_DATA_DIR/dashboard/secrets.toml` (folder 0700, file 0600) and points Streamlit at
  that file alone (`--secrets.files`); or
- an `[auth]` section in a Streamlit secrets file you keep yourself (`.streamlit/secrets.toml`
  in the repository or `~/.streamlit/secrets.toml`), used as it is.

Without either the dashboard runs in local mode, one user without sign-in, and may listen only
on a loopback address unless `--allow-unauthenticated` is given. See docs/security.md.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core.config import PROJECT_ROOT, settings

#: RETAIN_OIDC_* variable → (Streamlit `[auth]` key, required).
OIDC_VARIABLES = {
    "RETAIN_OIDC_METADATA_URL": ("server_metadata_url", True),
    "RETAIN_OIDC_CLIENT_ID": ("client_id", True),
    "RETAIN_OIDC_CLIENT_SECRET": ("client_secret", True),
    "RETAIN_OIDC_REDIRECT_URI": ("redirect_uri", False),
    "RETAIN_OIDC_COOKIE_SECRET": ("cookie_secret", False),
}
#: Extra OpenID Connect request parameters (Streamlit's `client_kwargs`).
OIDC_SCOPE_VARIABLE = "RETAIN_OIDC_SCOPE"
OIDC_PROMPT_VARIABLE = "RETAIN_OIDC_PROMPT"
DEFAULT_REDIRECT_URI = "http://localhost:{port}/oauth2callback"


class ServeError(ValueError):
    """The dashboard must not start as asked: the message says why and what to do."""


@dataclass
class ServePlan:
    """What `retain dashboard` will run."""

    mode: str  # "oidc" or "local"
    command: list[str]
    env: dict[str, str]
    secrets_file: Path | None = None
    warnings: list[str] = field(default_factory=list)


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address or `localhost` (reachable only from this machine)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def private_dir() -> Path:
    """`$RETAIN_DATA_DIR/dashboard`, created owner-only (0700): the generated secrets and cookie secret."""
    path = settings().data_dir / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), replacing it atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def cookie_secret(folder: Path) -> str:
    """RETAIN_OIDC_COOKIE_SECRET, else a random secret kept in `folder/cookie_secret` (0600) across restarts."""
    given = os.environ.get("RETAIN_OIDC_COOKIE_SECRET", "").strip()
    if given:
        return given
    path = folder / "cookie_secret"
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if len(value) >= 32:
            return value
    value = secrets.token_urlsafe(48)
    _write_private(path, value + "\n")
    return value


def oidc_settings_from_env(port: int) -> dict | None:
    """The `[auth]` section from RETAIN_OIDC_* (None if none is set); raises ServeError if some are missing."""
    given = {var: os.environ.get(var, "").strip() for var in OIDC_VARIABLES}
    if not any(given[var] for var, (_, required) in OIDC_VARIABLES.items() if required):
        return None
    missing = [var for var, (_, required) in OIDC_VARIABLES.items() if required and not given[var]]
    if missing:
        raise ServeError(f"sign-in is half configured: set {', '.join(missing)} too (or unset every RETAIN_OIDC_*)")
    redirect = given["RETAIN_OIDC_REDIRECT_URI"] or DEFAULT_REDIRECT_URI
    auth = {
        "redirect_uri": redirect.replace("{port}", str(port)),
        "server_metadata_url": given["RETAIN_OIDC_METADATA_URL"],
        "client_id": given["RETAIN_OIDC_CLIENT_ID"],
        "client_secret": given["RETAIN_OIDC_CLIENT_SECRET"],
    }
    if not auth["redirect_uri"].rstrip("/").endswith("/oauth2callback"):
        raise ServeError(f"RETAIN_OIDC_REDIRECT_URI={redirect!r} must end with /oauth2callback "
                         "(the address registered at your identity provider)")
    kwargs = {}
    if os.environ.get(OIDC_SCOPE_VARIABLE, "").strip():
        kwargs["scope"] = os.environ[OIDC_SCOPE_VARIABLE].strip()
    if os.environ.get(OIDC_PROMPT_VARIABLE, "").strip():
        kwargs["prompt"] = os.environ[OIDC_PROMPT_VARIABLE].strip()
    if kwargs:
        auth["client_kwargs"] = kwargs
    return auth


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def secrets_toml(auth: dict) -> str:
    """`auth` as a Streamlit secrets file with one `[auth]` section (and `[auth.client_kwargs]`)."""
    lines = ["# Written by `retain dashboard` from RETAIN_OIDC_* on each start: do not edit, do not share.", "[auth]"]
    lines += [f"{key} = {_toml_string(str(value))}" for key, value in auth.items() if not isinstance(value, dict)]
    for key, value in auth.items():
        if isinstance(value, dict):
            lines += ["", f"[auth.{key}]"] + [f"{k} = {_toml_string(str(v))}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def default_secrets_files() -> list[Path]:
    """Where Streamlit looks for secrets when not told: the user's and the repository's `.streamlit/secrets.toml`."""
    return [Path.home() / ".streamlit" / "secrets.toml", PROJECT_ROOT / ".streamlit" / "secrets.toml"]


def _has_auth_section(path: Path) -> bool:
    try:
        return bool(tomllib.loads(path.read_text(encoding="utf-8")).get("auth"))
    except (OSError, tomllib.TOMLDecodeError):
        return False


def plan(port: int, host: str, allow_unauthenticated: bool = False) -> ServePlan:
    """Decide how to serve: sign-in or local mode, the secrets file, the command and its environment."""
    from dashboards.access import AccessConfigError, access_settings

    try:
        access_settings()  # a broken roles file or claim setting fails here, not at the first visitor
    except AccessConfigError as exc:
        raise ServeError(str(exc)) from exc
    env = dict(os.environ)
    env.pop("RETAIN_ALLOW_UNAUTHENTICATED", None)
    warnings: list[str] = []
    secrets_file = None
    extra: list[str] = []
    auth = oidc_settings_from_env(port)
    if auth is not None:
        folder = private_dir()
        auth["cookie_secret"] = cookie_secret(folder)
        secrets_file = folder / "secrets.toml"
        _write_private(secrets_file, secrets_toml(auth))
        extra = ["--secrets.files", str(secrets_file)]
        mode = "oidc"
        redirect = auth["redirect_uri"]
    else:
        found = [p for p in default_secrets_files() if p.is_file() and _has_auth_section(p)]
        mode = "oidc" if found else "local"
        redirect = ""
        for path in found:
            if path.stat().st_mode & 0o077:
                warnings.append(f"{path} holds the sign-in client secret and can be read by other users: "
                                f"chmod 600 {path}")
    if mode == "local" and not is_loopback(host):
        if not allow_unauthenticated:
            raise ServeError(
                f"refusing to serve on {host} without sign-in: anyone who can reach this port would see every "
                "page, customer contact details and CRM downloads. Configure sign-in (RETAIN_OIDC_*, see "
                "docs/security.md), serve on 127.0.0.1, or pass --allow-unauthenticated if something in front "
                "of it already restricts who can connect."
            )
        warnings.append(f"serving on {host} WITHOUT sign-in (--allow-unauthenticated): everyone who can reach "
                        "this port gets the local user's roles and is written to the audit log as that one user.")
        env["RETAIN_ALLOW_UNAUTHENTICATED"] = "1"
    if mode == "oidc" and redirect.startswith("http://") and not is_loopback(host):
        warnings.append(f"the sign-in redirect {redirect} is plain HTTP: put the dashboard behind an HTTPS reverse "
                        "proxy and set RETAIN_OIDC_REDIRECT_URI to its https:// address (docs/security.md).")
    command = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "dashboards" / "app.py"),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer", *extra,
    ]
    return ServePlan(mode=mode, command=command, env=env, secrets_file=secrets_file, warnings=warnings)
