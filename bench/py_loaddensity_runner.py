#!/usr/bin/env python3
"""Runs one `start_test` of the Python LoadDensity (je_load_density); used by
bench/vs_python_loaddensity.py, not meant to be run by hand.

    /var/tmp/ld-bench-venv/bin/python bench/py_loaddensity_runner.py '<start_test kwargs as JSON>' [--nowait]

Runs `je_load_density.start_test(**kwargs)` (which blocks for `test_time` seconds), then prints
one line `RESULT {"records": N, "errors": E, "version": "..."}` on stdout, from the package's
record store `test_record_instance` (successes and failures). The driver counts requests from
the target servers' counters, not from this line; it is printed as a cross-check only.

The Python version's users wait 0.1-0.2 s between iterations, hard-coded on its user classes.
`--nowait` sets the `wait_time` of the user class that `user_detail_dict.user` names to
`constant(0)` before starting: the Python tool's best case for throughput, no longer its
stock behaviour.
"""

import json
import sys


def main():
    kwargs = json.loads(sys.argv[1])
    nowait = "--nowait" in sys.argv[2:]
    # Importing je_load_density imports Locust, which monkey-patches the standard library with
    # gevent; nothing else is imported before it.
    import je_load_density
    from je_load_density.utils.test_record.test_record_class import test_record_instance

    if nowait:
        from locust import constant
        from je_load_density.wrapper.start_wrapper.locust_start import _USER_REGISTRY

        user_type = kwargs["user_detail_dict"]["user"]
        _USER_REGISTRY[user_type]["actually_user"].wait_time = constant(0)

    try:
        from importlib.metadata import version
        package_version = version("je_load_density")
    except Exception:  # noqa: BLE001 - only informative
        package_version = "unknown"
    je_load_density.start_test(**kwargs)
    result = {
        "records": len(test_record_instance.test_record_list),
        "errors": len(test_record_instance.error_record_list),
        "first_error": (test_record_instance.error_record_list[0].get("error")
                        if test_record_instance.error_record_list else None),
        "version": package_version,
    }
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
