"""Known-vulnerability audit of our pins: pip-audit over requirements*.txt and
npm audit over package-lock.json. Run by .ci/run after the suites.

A finding fails the run unless .ci/audit-ignore lists its id with a reason.
When an audit cannot reach its vulnerability database (PyPI's JSON API for
pip-audit, the registry's advisories endpoint for npm audit), that audit is
reported as SKIPPED with the reason and does not fail the run: a registry
mirror without those endpoints must not turn CI red, and must not pass as
"no known vulnerabilities" either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE_FILE = ROOT / ".ci" / "audit-ignore"


def ignored_ids() -> dict[str, str]:
    """`ID  # reason` per line; a line without a reason is an error."""
    ids: dict[str, str] = {}
    for number, line in enumerate(IGNORE_FILE.read_text().splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        vuln_id, _, reason = entry.partition("#")
        if not reason.strip():
            sys.exit(f"{IGNORE_FILE}:{number}: every ignored finding needs a reason after '#'")
        ids[vuln_id.strip()] = reason.strip()
    return ids


def pip_audit(ignore: dict[str, str]) -> bool:
    command = [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip", "--progress-spinner", "off"]
    command += ["--format", "json", "--timeout", "30"]
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        command += ["-r", str(ROOT / requirements)]
    for vuln_id in ignore:
        command += ["--ignore-vuln", vuln_id]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)  # noqa: S603 (our own argv)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit: SKIPPED, it did not answer (exit {result.returncode}): {result.stderr.strip()[-500:]}")
        return True
    dependencies = report.get("dependencies", [])
    audited = [d for d in dependencies if "skip_reason" not in d]
    if dependencies and not audited:
        reason = dependencies[0]["skip_reason"]
        print("pip-audit: SKIPPED, its vulnerability database is unreachable from here (every one of")
        print(f"  {len(dependencies)} pins skipped, e.g. {reason!r}); run it where PyPI's JSON API answers.")
        return True
    findings = [(d["name"], d["version"], v["id"]) for d in audited for v in d.get("vulns", [])]
    for name, version, vuln_id in findings:
        print(f"pip-audit: {name} {version}: {vuln_id} (fix: bump the pin, or list it in .ci/audit-ignore)")
    skipped = len(dependencies) - len(audited)
    print(f"pip-audit: {len(audited)} pins audited, {skipped} skipped, {len(findings)} findings")
    return not findings


def npm_audit(ignore: dict[str, str]) -> bool:
    result = subprocess.run(
        ["npm", "audit", "--json", "--package-lock-only"],  # noqa: S607 (npm from PATH, as make does)
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"npm audit: SKIPPED, it did not answer (exit {result.returncode}): {result.stderr.strip()[-500:]}")
        return True
    if "vulnerabilities" not in report:
        message = report.get("message") or report.get("error", {}).get("summary") or result.stderr.strip()[-300:]
        print(f"npm audit: SKIPPED, its advisories endpoint is unreachable from here: {message}")
        return True
    findings = []
    for name, entry in report["vulnerabilities"].items():
        for via in entry.get("via", []):
            if isinstance(via, dict):
                advisory = str(via.get("url") or via.get("source"))
                if advisory not in ignore and str(via.get("source")) not in ignore:
                    findings.append((name, entry.get("severity"), advisory))
    for name, severity, advisory in findings:
        print(f"npm audit: {name} ({severity}): {advisory} (fix: bump the pin, or list it in .ci/audit-ignore)")
    print(f"npm audit: {len(findings)} findings")
    return not findings


def main() -> int:
    ignore = ignored_ids()
    ok = pip_audit(ignore)
    ok = npm_audit(ignore) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
