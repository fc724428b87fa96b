"""The man pages: each renders without a warning (groff -ww) and names every long
option its program's --help lists, so a new option cannot go undocumented.

usage: check_man.py BUILD_DIR MAN_DIR
"""
import os
import re
import subprocess
import sys

PAGES = {  # page -> the --help it must cover
    "initiator.1": ["initiator/initiator", "--help"],
    "responder.8": ["responder/responder", "--help"],
    "kdc.8": ["kdc/kdc", "serve", "--help"],
}


# kd3.conf(5) must name every config key: the long options of each program's table.
CONF_PAGE = "kd3.conf.5"
NOT_KEYS = {"--config", "--help", "--version"}


def groff_warnings(page):
    r = subprocess.run(["groff", "-man", "-ww", "-z", page], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    return r.returncode, r.stderr.strip()


def help_options(build, argv):
    r = subprocess.run([os.path.join(build, argv[0])] + argv[1:], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return sorted(set(re.findall(r"^\s+(--[a-z][a-z0-9-]*)", r.stdout, re.M)))


def main():
    build, man = sys.argv[1], sys.argv[2]
    failures = []
    pages = sorted(p for p in os.listdir(man) if re.match(r".+\.[1-8]$", p))
    if not pages:
        failures.append(f"{man}: no man pages")
    for name in pages:
        page = os.path.join(man, name)
        rc, warnings = groff_warnings(page)
        if rc != 0 or warnings:
            failures.append(f"{name}: groff: {warnings or rc}")
        with open(page) as f:
            text = f.read().replace("\\-", "-")
        for opt in help_options(build, PAGES[name]) if name in PAGES else []:
            if not re.search(re.escape(opt) + r"(?![a-z0-9-])", text):
                failures.append(f"{name}: {opt} (from --help) is not documented")
        if name == CONF_PAGE:
            for argv in PAGES.values():
                for opt in set(help_options(build, argv)) - NOT_KEYS:
                    if not re.search(r"(?<![a-z0-9-])" + re.escape(opt[2:]) + r"(?![a-z0-9-])",
                                     text):
                        failures.append(f"{name}: key {opt[2:]} ({argv[0]}) is not documented")
        print(f"{name}: checked")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
