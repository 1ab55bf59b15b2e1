"""Layer 1: a message's tier from features of its text alone (no I/O, a few regular expressions).

Each tier collects points from its cues (strong cues 2, weak cues 1); the length of the message adds to
`simple` when it is short and to `complex` when it is long. The tier with the most points wins; the
confidence says how clearly it won, and a message with few points, or one in a language the cue lists
cover thinly, is less sure. Tuned on the `dev` split of bench/data/routing_labelled.jsonl."""

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


def _cues(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Word boundaries only for Latin-script words; CJK has no spaces, so those cues match anywhere.
_STRONG = {
    "coding": _cues(
        r"```", r"\btraceback\b", r"\b\w+(?:error|exception)\b", r"\bsegmentation fault\b|\bsegfault\b",
        r"\bdef \w+\(", r"=>", r"\w\(\)", r"\bconsole\.log\b", r"#include", r"\bselect\b.+\bfrom\b",
        # Not \b: beside CJK letters there is no word boundary ("用Python写").
        r"(?<![a-z])(?:python|javascript|typescript|java|rust|golang|c\+\+|kotlin|swift|php|ruby|sql)(?![a-z])",
        r"\b(?:regex|bash|css|html|react|npm|pip|git|docker(?:file)?|kubernetes|pytest|flask|express|"
        r"goroutines?|mongodb)\b",
        r"\bcrashloopbackoff\b|\bgithub actions\b",
    ),
    "reasoning": _cues(
        r"\bprove\b|\bproof\b|\bshow that\b|\btheorem\b|\binduction\b|\birrational\b|\bprimes?\b",
        r"\bprobability\b|\bexpected value\b|\bhow many ways\b|\binteger solutions\b|\bsolve\b",
        r"\bderivative\b|\bintegral\b|\bequation\b",
        r"\bknights?\b.*\bknaves?\b|\bsyllogism\b|\bvalid\b.*\bargument\b|\bargument\b.*\bvalid\b",
        r"\bpuzzle\b|\briddle\b|\bminimum number of\b|\boptimal strategy\b|\bjustify\b",
        r"\d\s*[-+*/^=]\s*\(?\d|\b[a-z]\^\d|\b\d+[a-z]\s*[-+=]",  # arithmetic and algebra
        r"\d+[^\d?]+\d+[^\d?]+\d+[^?]*\?",  # a word problem: three numbers, then a question
        r"\bdemuestra\b|\bprobabilidad\b|\becuaci[oó]n\b|\bd[ée]montre\b|\bprobabilit[ée]\b|\b[ée]quation\b",
        r"\bbeweise\b|\bwahrscheinlichkeit\b|\bgleichung\b|\bprove que\b|\bprobabilidade\b|\bequa[çc][ãa]o\b",
        r"\bdimostra\b|\bprobabilit[àa]\b|\bequazione\b|\bдокажи\b|\bвероятност|\bуравнени|\bреши\b",
        r"证明|概率|方程|証明|確率|方程式",
    ),
    "complex": _cues(
        r"\banaly[sz]e\b|\banalysis\b|\bpros and cons\b|\btrade-?offs?\b|\bin-depth\b|\bcomprehensive\b",
        r"\bstrategy\b|\broadmap\b|\bdue diligence\b|\bbusiness plan\b|\barchitecture\b|\bimplications\b",
        r"\bevaluate\b|\bassess\b|\bcritique\b|\bcritically\b|\bthorough\b|\bresearch report\b",
        r"\banaliza\b|\bestrategia\b|\bplan de negocio\b|\banalyse\b|\bstrat[ée]gie\b|\brapport complet\b",
        r"\banalysiere\b|\bausf[üu]hrlich\b|\bstrategie\b|\banalise\b|\bestrat[ée]gia\b|\banalizza\b",
        r"\bпроанализируй\b|\bстратеги|\bразв[её]рнут",
        r"分析|策略|戦略",
    ),
    "medium": _cues(
        r"\b(?:write|draft|compose)\b.{0,40}\b(?:email|letter|note|post|poem|haiku|story|toast|reply|"
        r"description|message|cover letter|complaint)\b",
        r"\bsummari[sz]e\b|\btranslate\b|\bproofread\b|\brewrite\b|\brecipe\b|\bbedtime story\b",
        r"\bescribe\b|\bexpl[ií]ca|\bresum|\btraduc|\b[ée]cris\b|\bexplique|\br[ée]dige\b|\bschreibe\b",
        r"\berkl[äa]re\b|\b[üu]bersetze\b|\bescreva\b|\bscrivi\b|\bspiega|\bнапиши\b|\bобъясни\b",
        r"写|邮件|解释|書いて|メール|説明",
    ),
    "simple": _cues(
        r"^\W*(?:hi|hello|hey|yo|hiya|good (?:morning|night|evening|afternoon)|thanks|thank you|ok|okay|"
        r"cool|nice|great|lol|brb|yes|no|sure|sounds good|hola|gracias|muchas gracias|bonjour|merci|"
        r"hallo|danke|ol[áa]|obrigad[oa]|ciao|grazie|привет|спасибо)\b",
        r"^\W*(?:你好|谢谢|こんにちは|ありがとう)",
    ),
}

_WEAK = {
    "coding": _cues(
        r"\b(?:code|function|script|bug|debug|compile|api|endpoint|query|class|variable|array|loop|"
        r"linked list|binary search|refactor|unit tests?|pointer|div|interface|repo|commit|pod)\b",
        r"\bc[óo]digo\b|\bfunci[óo]n\b|\bfun[çc][ãa]o\b|\bfonction\b|\bfunktion\b|\bfunzione\b|\bconsulta\b",
        r"\bфункци|\bкод\b|\bскрипт",
        r"代码|函数|程序|コード|関数|クエリ",
    ),
    "reasoning": _cues(
        r"\bstep by step\b|\bpaso a paso\b|\bconclude\b|\blogic\b|\bodd\b|\beven\b|\bwhich is larger\b",
        r"\bcalculate\b|\bcompound interest\b|\bolder than\b|\bdevise\b|\bweighings?\b|\bpar\b",
        r"\bdispari\b|\bpares?\b",
    ),
    "complex": _cues(
        r"\bcompare\b|\bcomparison\b|\bplan\b|\brisks?\b|\bbudget\b|\bdetailed\b|\boptions\b|\bkpis?\b",
        r"\brecommend\b|\bweigh\b|\bmigration\b|\bphases\b|\bmarket\b|\bproposal\b|\bbreak down\b|\bcauses\b",
        r"\bcompara\b|\bdetallad|\bd[ée]taill|\bdetaillierte\b|\bdetalhad|\bdettaglio\b|\brischi\b",
        r"\bсравни\b|\bподробн|\bриск",
        r"比较|详细|詳しく|リスク",
    ),
    "medium": _cues(
        r"\bexplain\b|\bdescribe\b|\bideas?\b|\bsuggest\b|\btips\b|\bhow do i\b|\bwrite\b|\bhelp me\b",
        r"\bgive me\b|\bmake a\b|\blist\b|\bwhy is\b|\bbenefits\b|\bplot\b|\bsentence\b|\bgrammar\b",
        r"\bideas\b|\bideias\b|\bcomment\b|\bwie\b",
    ),
    "simple": _cues(
        r"^\W*(?:what(?:'s| is)?|who|when|where|which|how (?:many|much|tall|old|far)|is|did|remind me)\b",
        r"\bconvert\b|\bcapital\b|\bstand for\b|\banother word\b|\bhow do you say\b|\bwhat time\b",
        r"^\W*(?:¿|qu[ée]l|wie sp[äa]t|qual)|\bcapital|\bcapitale|\bстолица\b|几点|首都|どこ",
    ),
}

_MENTION = re.compile(r"@[\w-]+")  # who is addressed says nothing about the work
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
_NON_ASCII_WORD = re.compile(r"[^\x00-\x7f]")
_SENTENCE = re.compile(r"[.!?。？！]\s")


def classify(text: str) -> Decision:
    """The tier of one message by its text, and how sure the rules are (see module doc)."""
    text = _MENTION.sub("", text)
    words = len(text.split()) + len(_CJK.findall(text)) // 2
    scores = dict.fromkeys(TIERS, 0.0)
    for tier in TIERS:
        scores[tier] += 2 * len(_STRONG[tier].findall(text)) + len(_WEAK[tier].findall(text))
    if words <= 6:
        scores["simple"] += 1
    elif words > 30:
        scores["complex"] += 1 + (words > 60) + len(_SENTENCE.findall(text)) / 4
    # A tie goes to the higher tier: a stronger model than needed costs money, a weaker one the answer.
    ranked = sorted(reversed(TIERS), key=scores.__getitem__, reverse=True)
    best, second = scores[ranked[0]], scores[ranked[1]]
    if best == 0:  # no cue at all: a guess by length
        return Decision("simple" if words <= 12 else "medium", 0.2)
    confidence = min(1.0, best / 3) * (1 - second / best)
    if _NON_ASCII_WORD.search(text) and best < 3:  # the cue lists are thinner outside English
        confidence *= 0.8
    return Decision(ranked[0], round(confidence, 3))


def distance(a: str, b: str) -> int:
    """How many rungs of the ladder apart two tiers are."""
    return abs(TIERS.index(a) - TIERS.index(b))
