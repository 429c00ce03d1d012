"""``poscuda audit``: train attackers on clean and protected data and test them on clean audio
(main.py), with the clips it reads (data.py), the defenses attackers may use (defenses.py) and
the attacker models themselves (attackers.py, needs torch)."""

from .main import AuditResult, AuditRow, Run, audit

__all__ = ["AuditResult", "AuditRow", "Run", "audit"]
