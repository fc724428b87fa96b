"""Memory images for the key wipe check: run a program under gdb, stop it where it
exits (and once mid-session if asked), dump its memory with gcore, and search the
dump for secrets in binary and hex form, naming where each one was found.

gdb runs the program from the start, so no attach is needed; reading the memory of a
process that set PR_SET_DUMPABLE 0 (kd3 does) still takes CAP_SYS_PTRACE (root).
Needs gdb (Debian: gdb).
"""
import os
import re
import struct

PT_LOAD = 1


def gdb_argv(script_path, program_argv):
    return ["gdb", "-batch", "-nx", "-x", script_path, "--args", *program_argv]


def write_script(path, final_core, mid_core=None, mid_function=None):
    """A gdb script: run; optionally dump mid_core at the first call of mid_function;
    stop at exit()/_exit(), print the mappings, dump final_core, kill."""
    lines = ["set pagination off", "set confirm off", "set breakpoint pending on",
             "set print thread-events off", "set style enabled off",
             "handle SIGTERM nostop noprint pass", "handle SIGPIPE nostop noprint pass",
             "handle SIGINT nostop noprint pass"]
    if mid_core:
        lines += [f"tbreak {mid_function}", "commands", "silent", f"gcore {mid_core}",
                  "continue", "end"]
    lines += ["break exit", "break _exit", "run", "echo KD3-MAPS-BEGIN\\n",
              "info proc mappings", "echo KD3-MAPS-END\\n", f"gcore {final_core}", "kill",
              "quit"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


MAP_RE = re.compile(r"^\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+0x[0-9a-f]+"
                    r"(?:\s+([rwxsp-]{4}))?\s*(.*)$")


def parse_mappings(gdb_output):
    """[(start, end, name)] from 'info proc mappings' between the script's markers."""
    m = re.search(r"KD3-MAPS-BEGIN(.*?)KD3-MAPS-END", gdb_output, re.S)
    out = []
    for line in (m.group(1).splitlines() if m else []):
        mm = MAP_RE.match(line)
        if mm:
            out.append((int(mm.group(1), 16), int(mm.group(2), 16),
                        mm.group(4).strip() or "anonymous"))
    return out


class Core:
    """An ELF core file: its loadable segments (process memory) and the rest (notes:
    registers of every thread)."""

    def __init__(self, path, mappings=()):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF core")
        phoff, = struct.unpack_from("<Q", d, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", d, 0x36)
        self.segments = []  # (file offset, size, vaddr)
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                "<IIQQQQ", d, phoff + i * phentsize)
            if p_type == PT_LOAD and p_filesz:
                self.segments.append((p_offset, p_filesz, p_vaddr))
        self.mappings = list(mappings)

    def memory_bytes(self):
        return sum(size for _, size, _ in self.segments)

    def where(self, offset):
        """'0xADDR in NAME' for a file offset inside a segment, else 'notes'."""
        for off, size, vaddr in self.segments:
            if off <= offset < off + size:
                addr = vaddr + offset - off
                for start, end, name in self.mappings:
                    if start <= addr < end:
                        return f"{addr:#x} in {os.path.basename(name) if '/' in name else name}"
                return f"{addr:#x}"
        return "register notes"

    def find(self, needle, limit=4):
        """Places (see where) of needle in the core, at most limit of them."""
        places, start = [], 0
        while len(places) < limit:
            i = self.data.find(needle, start)
            if i < 0:
                break
            places.append(self.where(i))
            start = i + 1
        return places

    def search(self, secrets):
        """{name: [(form, places)]} for every secret found in binary, hex or HEX form."""
        found = {}
        for name, value in secrets.items():
            for form, needle in (("binary", value), ("hex", value.hex().encode()),
                                 ("HEX", value.hex().upper().encode())):
                places = self.find(needle)
                if places:
                    found.setdefault(name, []).append((form, places))
        return found
