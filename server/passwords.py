"""How strong an account's password must be, for every way an account is made or changed
(`eit users add|passwd`, the admin API, `eit demo`).

- Strength is zxcvbn's estimate (the Python port of Dropbox's estimator: common passwords,
  names, words, keyboard walks, dates, repeats, l33t), score 0-4; at least
  :data:`MIN_SCORE` (3: "safely unguessable: moderate protection from an offline slow-hash
  scenario", zxcvbn's own words) for every account. The user name and the role are given to the
  estimator as words an attacker knows, so ``ada-admin-2026`` is weak for the admin ``ada``.
- Officers, supervisors and admins see every factory: their passwords are at least
  :data:`MIN_OFFICER_LENGTH` characters as well; an operator's at least :data:`MIN_LENGTH`.
- The estimate reads the first :data:`SCORED_CHARACTERS` characters (zxcvbn's own cap: its cost
  grows with the length); a longer password is as strong as its beginning, or stronger.
"""

from __future__ import annotations

import secrets

from zxcvbn import zxcvbn

MIN_SCORE = 3
MIN_LENGTH = 8
MIN_OFFICER_LENGTH = 12
MAX_LENGTH = 1024
SCORED_CHARACTERS = 72
PRIVILEGED_ROLES = ("officer", "supervisor", "admin")


def password_problem(password: str, *, role: str | None = None, user: str | None = None) -> str | None:
    """Why ``password`` is not good enough for an account of ``role`` named ``user``, or None."""
    least = MIN_OFFICER_LENGTH if role in PRIVILEGED_ROLES else MIN_LENGTH
    if len(password) < least:
        who = f"a {role}'s password" if role else "the password"
        return f"{who} is too short: at least {least} characters"
    if len(password) > MAX_LENGTH:
        return f"the password is too long: at most {MAX_LENGTH} characters"
    known = [w for w in (user, role, "eit", "monitor", "eit-monitor") if w]
    result = zxcvbn(password[:SCORED_CHARACTERS], user_inputs=known)
    score = int(result["score"])
    if score >= MIN_SCORE:
        return None
    feedback = result.get("feedback") or {}
    hints = [str(feedback.get("warning") or "").strip(), *(str(s) for s in feedback.get("suggestions") or [])]
    said = " ".join(h.rstrip(".") + "." for h in hints if h)
    return (
        f"the password is too easy to guess (strength {score} of 4, at least {MIN_SCORE} needed)"
        + (f": {said}" if said else "")
        + " Use a few unrelated words or a password manager's random password."
    )


def generate_password() -> str:
    """A random password that passes for any role: 20 characters from 120 bits of randomness."""
    while True:
        candidate = secrets.token_urlsafe(15)
        if password_problem(candidate, role="admin") is None:
            return candidate
