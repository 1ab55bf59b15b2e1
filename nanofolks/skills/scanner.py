"""Static analysis of a skill before it may load: its scripts (Python by the AST, shell by pattern), the
shell fenced in its Markdown, and its instructions (prompt injection). Nothing is run or imported.

Each finding has a risk; the skill's risk is the highest one (low when there is none):
    low       nothing found: loads without asking
    medium    reads the environment, talks to the network, decodes data, touches files outside the workspace
    high      runs commands or code it builds (subprocess, exec/eval, dynamic imports, getattr tricks,
              pickle/marshal), instructions that order the bot to ignore its rules or hide what it does
    critical  obfuscated code run (base64 -> exec), curl | sh, reverse shells, credential files (~/.ssh,
              ~/.aws, .netrc), instructions to reveal secrets or read credential files"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

RISKS = ("low", "medium", "high", "critical")
TEXT_LIMIT = 1_000_000  # a file larger than this is not read (and is a finding itself)


@dataclass
class Finding:
    file: str  # relative to the skill's folder
    line: int
    rule: str
    detail: str
    risk: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def risk(self) -> str:
        return max((f.risk for f in self.findings), key=RISKS.index, default="low")

    def as_json(self) -> dict[str, object]:
        return {"risk": self.risk,
                "findings": [{k: v for k, v in asdict(f).items() if k != "risk"} | {"risk": f.risk}
                             for f in self.findings]}


# --- Python --------------------------------------------------------------------------------------------

_RUNS = {"subprocess", "os.system", "os.popen", "os.execv", "os.execve", "os.execl", "os.execlp", "os.execvp",
         "os.spawnl", "os.spawnv", "os.spawnlp", "os.spawnvp", "os.startfile", "pty.spawn", "commands"}
_CODE = {"exec", "eval", "compile", "builtins.exec", "builtins.eval"}
_IMPORTS = {"__import__", "importlib.import_module", "importlib.__import__", "imp.load_source", "runpy.run_path",
            "runpy.run_module"}
_LOADS = {"pickle.loads", "pickle.load", "marshal.loads", "marshal.load", "dill.loads", "shelve.open",
          "cPickle.loads", "_pickle.loads"}
_DECODES = {"base64.b64decode", "base64.b32decode", "base64.a85decode", "base64.b85decode", "base64.decodebytes",
            "binascii.a2b_base64", "codecs.decode", "zlib.decompress", "bytes.fromhex"}
_NETWORK = {"socket", "urllib.request", "http.client", "requests", "httpx", "aiohttp", "ftplib", "smtplib", "telnetlib",
            "paramiko", "websocket", "websockets"}
_ENV = {"os.environ", "os.getenv", "os.environb", "os.putenv"}
_NATIVE = {"ctypes", "cffi"}
_DANGEROUS_NAMES = {"system", "popen", "exec", "eval", "spawn", "subprocess", "__import__", "compile", "loads",
                    "check_output", "run", "Popen", "call"}
CREDENTIALS = re.compile(r"(?:~|\$HOME|/home/[^/\s]+|/root)?/?\.(?:ssh|aws|gnupg|docker/config|kube/config)\b|"
                         r"\.netrc\b|id_rsa|id_ed25519|credentials\.json|\.git-credentials|/etc/shadow", re.IGNORECASE)


class _PythonScan(ast.NodeVisitor):
    def __init__(self, report: Report, file: str):
        self.report = report
        self.file = file
        self.aliases: dict[str, str] = {}  # local name -> dotted module or function it stands for

    def add(self, node: ast.AST, rule: str, detail: str, risk: str) -> None:
        self.report.findings.append(Finding(self.file, getattr(node, "lineno", 0), rule, detail, risk))

    def dotted(self, node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else node.attr
        return ""

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
            self._module(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            self._module(node, f"{module}.{alias.name}")
        self.generic_visit(node)

    def _module(self, node: ast.AST, name: str) -> None:
        top = name.split(".")[0]
        if top == "subprocess" or name in _RUNS or top == "pty":
            self.add(node, "runs-commands", f"imports {name}", "high")
        elif top in _NATIVE:
            self.add(node, "native-code", f"imports {name}", "high")
        elif top in {"pickle", "marshal", "dill", "_pickle", "cPickle"}:
            self.add(node, "unsafe-deserialization", f"imports {name}", "high")
        elif top in _NETWORK or name.startswith(tuple(_NETWORK)):
            self.add(node, "network", f"imports {name}", "medium")

    def visit_Call(self, node: ast.Call) -> None:
        name = self.dotted(node.func)
        hidden = _constant_text(node.args[1]) if name in {"getattr", "builtins.getattr"} and len(node.args) > 1 else None
        if name.split(".")[0] == "subprocess" or name in _RUNS:
            shell = any(k.arg == "shell" and _truthy(k.value) for k in node.keywords)
            self.add(node, "runs-commands", f"{name}(){' with shell=True' if shell else ''}", "high")
        elif name in _CODE:
            decoded = any(self.dotted(n.func) in _DECODES for n in ast.walk(node) if isinstance(n, ast.Call))
            if decoded:
                self.add(node, "obfuscated-code", f"{name}() of decoded data", "critical")
            else:
                self.add(node, "dynamic-code", f"{name}() runs code built at run time", "high")
        elif name in _IMPORTS:
            self.add(node, "dynamic-import", f"{name}({_constant_text(node.args[0]) if node.args else ''!r})", "high")
        elif name in {"getattr", "builtins.getattr"}:
            if hidden is None:
                self.add(node, "getattr-trick", "getattr() with a name computed at run time", "high")
            elif not isinstance(node.args[1], ast.Constant) or hidden in _DANGEROUS_NAMES:
                self.add(node, "getattr-trick", f"getattr(..., {hidden!r})", "critical" if hidden in _DANGEROUS_NAMES else "high")
        elif name in _LOADS:
            self.add(node, "unsafe-deserialization", f"{name}()", "high")
        elif name in _DECODES:
            self.add(node, "decodes-data", f"{name}()", "medium")
        elif name in _ENV:
            self.add(node, "reads-environment", f"{name}()", "medium")
        elif name in {"os.dup2"}:
            self.add(node, "reverse-shell", "os.dup2() rewires standard streams (a reverse shell's move)", "critical")
        elif name.split(".")[0] in _NETWORK or name.startswith(tuple(_NETWORK)):
            self.add(node, "network", f"{name}()", "medium")
        self._paths(node, name)
        self.generic_visit(node)

    def _paths(self, node: ast.Call, name: str) -> None:
        if name not in {"open", "io.open", "pathlib.Path", "Path", "os.open", "os.listdir", "shutil.copy",
                        "os.path.expanduser", "os.remove", "shutil.rmtree", "os.scandir", "os.walk"}:
            return
        for arg in node.args[:1]:
            path = _constant_text(arg)
            if path is None:
                continue
            if CREDENTIALS.search(path):
                self.add(node, "credential-files", f"{name}({path!r})", "critical")
            elif path.startswith(("/", "~")) or ".." in Path(path).parts:
                self.add(node, "outside-workspace", f"{name}({path!r})", "medium")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self.dotted(node) in _ENV and isinstance(node.ctx, ast.Load):
            self.add(node, "reads-environment", self.dotted(node), "medium")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        text = _constant_text(node)  # a path assembled from pieces, to slip past a plain text search
        if text is not None and CREDENTIALS.search(text):
            self.add(node, "credential-files", f"builds {CREDENTIALS.search(text).group()!r}", "critical")
            return
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and CREDENTIALS.search(node.value):
            self.add(node, "credential-files", f"mentions {CREDENTIALS.search(node.value).group()!r}", "critical")


def _constant_text(node: ast.AST) -> str | None:
    """The string an expression always evaluates to ("sys" + "tem", "".join([...]), f-strings of constants)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _constant_text(node.left), _constant_text(node.right)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.JoinedStr):
        parts = [_constant_text(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values]
        return "".join(parts) if all(p is not None for p in parts) else None  # type: ignore[arg-type]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
            and isinstance(node.args[0] if node.args else None, ast.List | ast.Tuple)):
        sep = _constant_text(node.func.value)
        parts = [_constant_text(e) for e in node.args[0].elts]  # type: ignore[union-attr]
        return sep.join(parts) if sep is not None and all(p is not None for p in parts) else None  # type: ignore[arg-type]
    return None


def _truthy(node: ast.AST) -> bool:
    return not (isinstance(node, ast.Constant) and not node.value)


def scan_python(source: str, file: str, report: Report) -> None:
    try:
        tree = ast.parse(source, filename=file)
    except SyntaxError as exc:
        report.findings.append(Finding(file, exc.lineno or 0, "unparseable", f"not valid Python: {exc.msg}", "high"))
        return
    _PythonScan(report, file).visit(tree)


# --- shell ---------------------------------------------------------------------------------------------

_SHELL_RULES: list[tuple[str, re.Pattern[str], str, str]] = [
    ("pipe-to-shell", re.compile(r"\b(?:curl|wget|fetch)\b[^\n|]*\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b"),
     "downloads a script and runs it", "critical"),
    ("pipe-to-shell", re.compile(r"\b(?:curl|wget)\b[^\n|]*\|\s*(?:python\d?|perl|ruby|node)\b"),
     "downloads code and runs it", "critical"),
    ("reverse-shell", re.compile(r"/dev/(?:tcp|udp)/|\bnc\b[^\n]*\s-[a-z]*e\s|\bncat\b[^\n]*--exec|"
                                 r"\bsocat\b[^\n]*exec:|mkfifo[^\n]*\bnc\b|\bbash\s+-i\s*>&"),
     "opens a shell to a remote host", "critical"),
    ("obfuscated-code", re.compile(r"base64\s+(?:-d|--decode)[^\n]*\|\s*(?:ba|z)?sh\b|\beval\s+\"?\$\(\s*echo[^\n]*base64"),
     "decodes hidden commands and runs them", "critical"),
    ("credential-files", CREDENTIALS, "touches credential files", "critical"),
    ("destructive", re.compile(r"\brm\s+-[a-z]*r[a-z]*f?[a-z]*\s+(?:/|~|\$HOME)(?:\s|$)|\bmkfs\b|\bdd\s+if=[^\n]*of=/dev/"),
     "deletes or overwrites far outside the workspace", "high"),
    ("dynamic-code", re.compile(r"\beval\s"), "eval runs text as commands", "high"),
    ("privilege", re.compile(r"\bsudo\b|\bchmod\s+(?:-R\s+)?777\b"), "asks for more privileges", "medium"),
    ("reads-environment", re.compile(r"\b(?:printenv|env)\s*(?:$|\||>)"), "dumps the environment", "medium"),
    ("network", re.compile(r"\b(?:curl|wget|nc|ncat|ssh|scp)\b"), "talks to the network", "medium"),
]
SHELL_FENCE = re.compile(r"^```[ \t]*(bash|sh|shell|zsh|console|terminal)?[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def scan_shell(source: str, file: str, report: Report, first_line: int = 1) -> None:
    for number, line in enumerate(source.splitlines(), start=first_line):
        code = line.split(" #", 1)[0].lstrip("$ ").strip()
        if not code or code.startswith("#"):
            continue
        seen = set()
        for rule, pattern, detail, risk in _SHELL_RULES:
            if rule in seen or not pattern.search(code):
                continue
            seen.add(rule)
            report.findings.append(Finding(file, number, rule, f"{detail}: {code[:120]}", risk))


# --- instructions --------------------------------------------------------------------------------------

_INJECTION: list[tuple[str, re.Pattern[str], str]] = [
    ("ignore-rules", re.compile(r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}\b(?:previous|prior|above|"
                                r"earlier|all|any|your|the|system)\b[^.\n]{0,30}\b(?:instructions?|rules?|guidelines?|"
                                r"prompts?|polic(?:y|ies)|restrictions?)", re.IGNORECASE), "high"),
    ("reveal-secrets", re.compile(r"\b(?:reveal|print|show|send|output|leak|post|upload|share|email|exfiltrate|dump)\b"
                                  r"[^.\n]{0,50}\b(?:secrets?|api[ _-]?keys?|tokens?|passwords?|credentials?|"
                                  r"system prompt|environment variables|env vars|vault)\b", re.IGNORECASE), "critical"),
    ("credential-files", re.compile(r"\b(?:read|open|cat|copy|send|upload|include)\b[^.\n]{0,40}" + CREDENTIALS.pattern,
                                    re.IGNORECASE), "critical"),
    ("hidden-actions", re.compile(r"\b(?:silently|secretly|quietly|covertly)\b|\bwithout (?:asking|telling|"
                                  r"informing|confirming|notifying)\b|\b(?:do not|don't|never) (?:tell|inform|mention|"
                                  r"show|ask)\b[^.\n]{0,20}\buser\b", re.IGNORECASE), "high"),
    ("run-commands", re.compile(r"\b(?:run|execute)\b[^.\n]{0,30}\b(?:any|arbitrary|every|whatever)\b[^.\n]{0,20}"
                                r"\bcommands?\b|\bthe following (?:shell )?commands? (?:immediately|automatically|now)\b",
                                re.IGNORECASE), "high"),
    ("role-override", re.compile(r"\byou are now\b|\bnew (?:system )?instructions\s*:|\bdeveloper mode\b|\bjailbreak\b",
                                 re.IGNORECASE), "medium"),
]
# "Never print tokens" is a rule for the bot, not an attack on it.
_NEGATABLE = {"reveal-secrets", "credential-files", "run-commands", "ignore-rules"}
_NEGATION = re.compile(r"\b(?:never|not|don't|do not|no|avoid|without)\b", re.IGNORECASE)
_HIDDEN_TEXT = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def scan_instructions(text: str, file: str, report: Report) -> None:
    """The Markdown outside its shell fences: orders aimed at the bot rather than instructions for a task."""
    for match in re.finditer(r"<!--(.*?)-->", text, re.DOTALL):
        line = text.count("\n", 0, match.start()) + 1
        report.findings.append(Finding(file, line, "hidden-comment", "an HTML comment the user never sees: "
                                       f"{match.group(1).strip()[:80]!r}", "medium"))
    for number, line in enumerate(text.splitlines(), start=1):
        if _HIDDEN_TEXT.search(line):
            report.findings.append(Finding(file, number, "hidden-text", "invisible characters in the text", "medium"))
        for rule, pattern, risk in _INJECTION:
            found = pattern.search(line)
            if found and not (rule in _NEGATABLE and _NEGATION.search(line[:found.start()])):
                report.findings.append(Finding(file, number, rule, f"{found.group()[:120]!r}", risk))
    for fence in SHELL_FENCE.finditer(text):
        scan_shell(fence.group(2), file, report, first_line=text.count("\n", 0, fence.start(2)) + 1)


# --- a whole skill -------------------------------------------------------------------------------------


def scan(path: Path) -> Report:
    """Scan a skill folder (or a single file)."""
    report = Report()
    root = path if path.is_dir() else path.parent
    files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if path.is_dir() else [path]
    for file in files:
        name = str(file.relative_to(root))
        if file.stat().st_size > TEXT_LIMIT:
            report.findings.append(Finding(name, 0, "too-large", f"{file.stat().st_size} bytes: not analysed", "high"))
            continue
        data = file.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            report.findings.append(Finding(name, 0, "binary", "a binary file cannot be analysed", "high"))
            continue
        first = text.split("\n", 1)[0]
        if file.suffix == ".py" or (first.startswith("#!") and "python" in first):
            scan_python(text, name, report)
        elif file.suffix in {".sh", ".bash", ".zsh"} or (first.startswith("#!") and "sh" in first):
            scan_shell(text, name, report)
        elif file.suffix in {".md", ".markdown", ".txt", ""}:
            scan_instructions(text, name, report)
        elif file.suffix in {".json", ".yaml", ".yml", ".toml", ".csv"}:
            continue  # data
        else:
            report.findings.append(Finding(name, 0, "unknown-script", f"{file.suffix} files are not analysed", "medium"))
    return report
