"""Contract suite: drive the provider sandbox with LinkedIn's, HubSpot's and Salesforce's own
client libraries and fail on any divergence from the real APIs.

    python suite.py SANDBOX_BINARY LOG_FILE [NAME_FILTER...]

Starts the sandbox on a port of its own (memory only), runs every check whose name contains one
of the filters (all without filters), stops the sandbox, prints `N passed, M failed`. The
sandbox's log is kept only when a check failed.
"""

import os
import sys

import checks_hubspot
import checks_linkedin
import checks_oauth
import checks_salesforce
from harness import CHECKS, Ctx, SandboxProcess, run_checks

# imported for their @check registrations; run in this order
MODULES = (checks_oauth, checks_linkedin, checks_hubspot, checks_salesforce)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, log_path, filters = argv[1], argv[2], argv[3:]
    ordered = [c for m in MODULES for c in CHECKS if c.__module__ == m.__name__]  # OAuth first
    selected = [c for c in ordered if not filters or any(f in c.__name__ for f in filters)]
    if not selected:
        print(f"no check matches {filters}", file=sys.stderr)
        return 2
    sandbox = SandboxProcess(binary, log_path)
    try:
        print(f"sandbox at {sandbox.base} (log: {log_path}); {len(selected)} checks", flush=True)
        passed, failed = run_checks(Ctx(sandbox.base), selected)
    finally:
        sandbox.stop()
    if failed:
        print(f"\nfailed (sandbox log: {log_path}):")
        for name, reason in failed:
            print(f"  {name}: {reason}")
    else:
        os.remove(log_path)
    print(f"\n{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
