"""``tongban tokens``: issue, list and revoke API bearer tokens from the command line."""

from __future__ import annotations

import click


def _engine():
    from cli.main import _engine as make

    return make()


def _out(as_json, value, human):
    from cli.main import _out as out

    out(as_json, value, human)


json_opt = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


@click.group("tokens")
def tokens():
    """Bearer tokens for the REST API (only a token's hash is stored; the secret is shown once)."""


@tokens.command("issue")
@click.argument("user")
@click.option("--name", required=True, help="what the token is for, e.g. the client's name")
@click.option("--as", "actor", default="system", show_default=True, help="who issues it (audit)")
@json_opt
def issue(user, name, actor, as_json):
    """Issue a token that acts as USER; prints the secret once."""
    _out(as_json, _engine().issue_token(user, name, actor=actor),
         lambda t: f"token {t['id']} for {t['user']} ({t['name']}):\n{t['token']}\n"
                   "Keep it now: it is not shown again.")


@tokens.command("list")
@json_opt
def list_(as_json):
    """List tokens (never their secrets)."""
    _out(as_json, _engine().tokens(),
         lambda rows: "\n".join(f"{t['id']:>5}  {t['user']:<20} {t['name']:<30} "
                                f"{'revoked' if t['revoked'] else 'active':<8} {t['created_at'] or ''}"
                                for t in rows) or "no tokens")


@tokens.command("revoke")
@click.argument("token_id", type=int)
@click.option("--as", "actor", default="system", show_default=True, help="who revokes it (audit)")
@json_opt
def revoke(token_id, actor, as_json):
    """Revoke token TOKEN_ID; requests with it get 401 from then on."""
    eng = _engine()
    eng.revoke_token(token_id, actor=actor)
    row = next(t for t in eng.tokens() if t["id"] == token_id)
    _out(as_json, row, lambda t: f"token {t['id']} ({t['user']}, {t['name']}) revoked")
