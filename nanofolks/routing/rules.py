"""Layer 1: a message's tier from features of its text alone (no I/O).

Each tier collects points from its cues (strong cues 2, weak cues 1); the length of the message adds to
`simple` when it is short and to `complex` when it is long. The tier with the most points wins; the
confidence says how clearly it won, and a message with few points, or one in a language the cue lists
cover thinly, is less sure. Tuned on the `dev` split of bench/data/routing_labelled.jsonl.

Speed: the text is lowered and split into words once; every tier's cues sit in one table, so each word is one
dict lookup; several-word and CJK cues are substring tests; regular expressions only for structure (code
syntax, algebra), behind a cheap gate. One regex alternation per tier cost about ten times more."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nanofolks.config.schema import TIERS

CONFIDENT = 0.5  # below it the rules are unsure: layer 2 may be asked, a sticky tier is not lowered


@dataclass(frozen=True)
class Decision:
    tier: str
    confidence: float  # 0..1
    layer: int = 1  # 1 rules, 2 the model classifier
    sticky: bool = False  # the room's tier was kept over this message's own

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT


@dataclass(frozen=True)
class Cues:
    """One weight's cues for one tier; each distinct cue found is one point of that weight."""

    words: frozenset[str] = frozenset()  # whole words
    stems: tuple[str, ...] = ()  # word beginnings: "explic" is explica, explícame, explicar
    phrases: tuple[str, ...] = ()  # substrings: several words, CJK, symbols
    pairs: tuple[tuple[frozenset[str], frozenset[str]], ...] = ()  # a word from each set, anywhere
    pattern: re.Pattern[str] | None = None  # structure, on the lowered text
    gate: re.Pattern[str] | None = None  # the pattern runs only when this cheap one finds something


def _w(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STRONG = {
    "coding": Cues(
        words=_w("traceback segfault python javascript typescript java rust golang kotlin swift php ruby sql regex "
                 "bash css html react npm pip git docker dockerfile kubernetes pytest flask express goroutine "
                 "goroutines mongodb crashloopbackoff"),
        phrases=("```", "=>", "console.log", "#include", "segmentation fault", "github actions", "c++", "()"),
        pairs=((frozenset({"select"}), frozenset({"from"})),),
        pattern=re.compile(r"\w(?:error|exception)\b|\bdef \w+\("),
        gate=re.compile(r"error|exception|def "),
    ),
    "reasoning": Cues(
        words=_w("prove proof theorem induction irrational prime primes probability solve derivative integral "
                 "equation syllogism puzzle riddle justify demuestra probabilidad ecuación démontre demontre "
                 "probabilité équation beweise wahrscheinlichkeit gleichung probabilidade equação dimostra "
                 "probabilità equazione докажи реши"),
        stems=("вероятност", "уравнени"),
        phrases=("show that", "expected value", "how many ways", "integer solutions", "minimum number of",
                 "optimal strategy", "prove que", "证明", "概率", "方程", "証明", "確率"),
        pairs=((frozenset({"knight", "knights"}), frozenset({"knave", "knaves"})),
               (frozenset({"valid"}), frozenset({"argument"}))),
        # Arithmetic, algebra, and a word problem (three numbers, then a question).
        pattern=re.compile(r"\d\s*[-+*/^=]\s*\(?\d|\b[a-z]\^\d|\b\d+[a-z]\s*[-+=]|\d+[^\d?]+\d+[^\d?]+\d+[^?]*\?"),
        gate=re.compile(r"\d"),
    ),
    "complex": Cues(
        words=_w("analyze analyse analysis tradeoffs comprehensive strategy roadmap architecture implications "
                 "evaluate assess critique critically thorough analiza estrategia stratégie analysiere "
                 "ausführlich strategie analise estratégia estrategia analizza проанализируй"),
        stems=("стратеги", "развёрнут", "развернут"),
        phrases=("pros and cons", "trade-off", "in-depth", "due diligence", "business plan", "research report",
                 "plan de negocio", "rapport complet", "分析", "策略", "戦略"),
    ),
    "medium": Cues(
        words=_w("summarize summarise translate proofread rewrite recipe escribe écris ecris rédige redige "
                 "schreibe erkläre erklare übersetze escreva scrivi напиши объясни"),
        stems=("explica", "explíca", "resum", "traduc", "explique", "spiega"),
        phrases=("bedtime story", "写", "邮件", "解释", "書いて", "メール", "説明"),
        pairs=((_w("write draft compose"),
                _w("email letter note post poem haiku story toast reply description message complaint")),),
    ),
    "simple": Cues(),  # a greeting at the start of a message: see _opening
}

_WEAK = {
    "coding": Cues(
        words=_w("code function script bug debug compile api endpoint query class variable array loop refactor "
                 "pointer div interface repo commit pod código codigo función funcion função funcao fonction "
                 "funktion funzione consulta код"),
        stems=("функци", "скрипт"),
        phrases=("linked list", "binary search", "unit test", "代码", "函数", "程序", "コード", "関数", "クエリ"),
    ),
    "reasoning": Cues(
        words=_w("conclude logic odd even calculate devise weighing weighings par dispari pares"),
        phrases=("step by step", "paso a paso", "which is larger", "compound interest", "older than"),
    ),
    "complex": Cues(
        words=_w("compare comparison plan risk risks budget detailed options kpi kpis recommend weigh migration "
                 "phases market proposal causes compara detaillierte dettaglio rischi сравни"),
        stems=("detallad", "détaill", "detaill", "detalhad", "подробн", "риск"),
        phrases=("break down", "比较", "详细", "詳しく", "リスク"),
    ),
    "medium": Cues(
        words=_w("explain describe idea ideas suggest tips write list benefits plot sentence grammar ideias "
                 "comment wie"),
        phrases=("how do i", "help me", "give me", "make a", "why is"),
    ),
    "simple": Cues(
        words=_w("convert capital capitale столица"),
        phrases=("stand for", "another word", "how do you say", "what time", "几点", "首都", "どこ"),
    ),
}

_GREETINGS = _w("hi hello hey yo hiya thanks ok okay cool nice great lol brb yes no sure hola gracias bonjour "
                "merci hallo danke olá ola obrigado obrigada ciao grazie привет спасибо")
_GREETING_PAIRS = frozenset({"good morning", "good night", "good evening", "good afternoon", "thank you",
                             "sounds good", "muchas gracias"})
_CJK_GREETINGS = ("你好", "谢谢", "こんにちは", "ありがとう")
_QUESTION_OPENERS = _w("what who when where which is did quel quelle qual")
_QUESTION_PAIRS = frozenset({"how many", "how much", "how tall", "how old", "how far", "remind me", "wie spät",
                             "wie spat"})

_MENTION = re.compile(r"@[\w-]+")  # who is addressed says nothing about the work
_WORD = re.compile(r"[^\W\u3040-\u30ff\u3400-\u9fff]+")  # words, split from CJK beside them ("用python写")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
_SENTENCE = re.compile(r"[.!?。？！]\s")


class _Index:
    """Every tier's cues folded into one lookup table per kind, so a message is walked once."""

    def __init__(self, weighted: list[tuple[int, dict[str, Cues]]]):
        self.words: dict[str, list[tuple[str, int]]] = {}
        self.stems: list[tuple[str, str, int]] = []
        self.phrases: list[tuple[str, str, int]] = []
        self.pairs: list[tuple[frozenset[str], frozenset[str], str, int]] = []
        self.patterns: list[tuple[re.Pattern[str], re.Pattern[str] | None, str, int]] = []
        for weight, cues in weighted:
            for tier, c in cues.items():
                for word in c.words:
                    self.words.setdefault(word, []).append((tier, weight))
                self.stems += [(stem, tier, weight) for stem in c.stems]
                self.phrases += [(phrase, tier, weight) for phrase in c.phrases]
                self.pairs += [(a, b, tier, weight) for a, b in c.pairs]
                if c.pattern is not None:
                    self.patterns.append((c.pattern, c.gate, tier, weight))
        self.any_stem = tuple(stem for stem, _, _ in self.stems)
        self.ascii_phrases = [p for p in self.phrases if p[0].isascii()]

    def score(self, low: str, words: set[str], scores: dict[str, float]) -> None:
        for word in words:
            for tier, weight in self.words.get(word, ()):
                scores[tier] += weight
            if word.startswith(self.any_stem):
                for stem, tier, weight in self.stems:
                    if word.startswith(stem):
                        scores[tier] += weight
        for phrase, tier, weight in self.ascii_phrases if low.isascii() else self.phrases:
            if phrase in low:
                scores[tier] += weight
        for a, b, tier, weight in self.pairs:
            if a & words and b & words:
                scores[tier] += weight
        for pattern, gate, tier, weight in self.patterns:
            if gate is None or gate.search(low):
                scores[tier] += weight * len(pattern.findall(low))


_INDEX = _Index([(2, _STRONG), (1, _WEAK)])


def _opening(low: str, tokens: list[str]) -> tuple[int, int]:
    """(strong, weak) simple-tier points from how the message starts: a greeting or thanks, a short question."""
    first, two = (tokens[0] if tokens else ""), " ".join(tokens[:2])
    strong = first in _GREETINGS or two in _GREETING_PAIRS or low.lstrip(" ¡!¿?.,").startswith(_CJK_GREETINGS)
    weak = first in _QUESTION_OPENERS or two in _QUESTION_PAIRS or low.lstrip().startswith("¿")
    return int(strong), int(weak)


def classify(text: str) -> Decision:
    """The tier of one message by its text, and how sure the rules are (see module doc)."""
    low = _MENTION.sub("", text).lower()
    tokens = _WORD.findall(low)
    words = set(tokens)
    cjk = 0 if low.isascii() else len(_CJK.findall(low))
    length = len(tokens) + cjk // 2
    scores = dict.fromkeys(TIERS, 0.0)
    _INDEX.score(low, words, scores)
    strong, weak = _opening(low, tokens)
    scores["simple"] += 2 * strong + weak + (length <= 6)
    if length > 30:
        scores["complex"] += 1 + (length > 60) + len(_SENTENCE.findall(low)) / 4
    # A tie goes to the higher tier: a stronger model than needed costs money, a weaker one the answer.
    ranked = sorted(reversed(TIERS), key=scores.__getitem__, reverse=True)
    best, second = scores[ranked[0]], scores[ranked[1]]
    if best == 0:  # no cue at all: a guess by length
        return Decision("simple" if length <= 12 else "medium", 0.2)
    confidence = min(1.0, best / 3) * (1 - second / best)
    if best < 3 and (cjk or not low.isascii()):  # the cue lists are thinner outside English
        confidence *= 0.8
    return Decision(ranked[0], round(confidence, 3))


def distance(a: str, b: str) -> int:
    """How many rungs of the ladder apart two tiers are."""
    return abs(TIERS.index(a) - TIERS.index(b))
