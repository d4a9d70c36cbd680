"""The `strongroom` command as the tests run it, in a subprocess: key derivation made cheap by the
explicit in-process switch (`vault.crypto.keys.use_test_kdf`), and with `--waive-isolation` the
isolation requirement waived (`vault.netguard.state.waive_for_tests`), so the pytest process's
fixtures and the real CLI can share vaults. The installed product has no way to turn either on.

    python -m tests.launch [--waive-isolation] [--real-kdf] -- ARGS...
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    waive = real_kdf = False
    while argv and argv[0] != "--":
        flag = argv.pop(0)
        if flag == "--waive-isolation":
            waive = True
        elif flag == "--real-kdf":
            real_kdf = True
        else:
            raise SystemExit(f"tests.launch: unknown flag {flag!r}")
    args = argv[1:] if argv else []
    from vault.crypto import keys
    from vault.netguard import state

    keys.use_test_kdf(not real_kdf)
    state.waive_for_tests(waive)
    from vault.cli import run

    run(args)  # leaves the process as the installed command does
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
