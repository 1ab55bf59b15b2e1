"""People, pets, places, organisations, projects and contacts in what the user says, and how they relate.

Rules do the cheap part (patterns like "my dog Rex", "Lucas is my brother", "I work at Acme Corp",
organisation suffixes, e-mails and links, capitalised names); the model can add the rest, in batches in
the background, when `memory.llmExtraction` is on."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanofolks.llm.client import LLM

SELF = "@self"  # stands for the sender of the message

PEOPLE = (
    "brother|sister|mother|mom|mum|father|dad|wife|husband|partner|boyfriend|girlfriend|son|daughter|"
    "best friend|friend|boss|manager|colleague|coworker|co-worker|cousin|uncle|aunt|grandmother|grandma|"
    "grandfather|grandpa|neighbour|neighbor|teacher|doctor|roommate|flatmate|fiancée|fiancee|fiancé|fiance"
)
PETS = "dog|cat|puppy|kitten|parrot|bird|hamster|rabbit|bunny|horse|pony|fish|turtle|tortoise|snake|lizard|pet"
_NAME = r"((?:[A-Z][\w'’-]*)(?:\s+[A-Z][\w'’-]*){0,2})"
_ORG_SUFFIX = (r"Inc|Corp|Corporation|Ltd|LLC|GmbH|SA|SAS|SARL|AG|PLC|BV|Labs|University|Foundation|Institute|"
               r"Bank|Group|Studios|Technologies|Systems")

_MY_REL = re.compile(rf"\b[Mm]y\s+({PEOPLE}|{PETS})(?:'s name is|\s+is\s+called|\s+is\s+named|\s+called|\s+named|\s+is|,)?\s+{_NAME}")
_IS_MY = re.compile(rf"{_NAME}\s+is\s+my\s+({PEOPLE}|{PETS})\b")
_WORK = re.compile(rf"\b(I|{_NAME[1:-1]})\s+(?:work|works|am working|is working)\s+(?:at|for)\s+{_NAME}")
_LIVE = re.compile(rf"\b(I|{_NAME[1:-1]})\s+(?:live|lives|am living|moved)\s+(?:in|to)\s+{_NAME}")
_FROM = re.compile(rf"\bI(?:'m| am)\s+from\s+{_NAME}")
_ORG = re.compile(rf"\b((?:[A-Z][\w&'’-]*\s+){{1,3}}(?:{_ORG_SUFFIX}))\b|\b(University of\s+[A-Z][\w'-]*)")
_PROJECT = re.compile(rf"\b(?:project|working on|building)\s+{_NAME}")
_AKA = re.compile(rf"{_NAME}\s*(?:\((?:aka\s+|or\s+)?{_NAME}\)|,?\s+(?:aka|a\.k\.a\.|also known as)\s+{_NAME})")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_URL = re.compile(r"https?://[^\s)>\]]+")
_BLOB = re.compile(r"\S{64,}")
EXTRACT_CHARS = 20_000  # a longer message is a document: its start names what it is about (and the names found
# are compared with each other: thousands of them would cost millions of comparisons)
_CAPS = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z][\w'’-]*(?:\s+[A-Z][\w'’-]*){0,2})")

# Capitalised words that are not names.
_NOT_NAMES_WORDS = """I I'm I've I'll I'd Im The A An And But Or So If When Then This That These Those It It's My Your Our
Their His Her We You They He She Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April
May June July August September October November December Hi Hello Hey Thanks Thank Please Yes No Ok OK Okay Also What
Who Why How Where Which Can Could Would Should Will Do Does Did Is Are Was Were Let Let's Remember Note Today Tomorrow
Yesterday Mr Mrs Ms Dr Sir Madam Not Just Maybe Sure Great Good Nice Cool"""
_NOT_NAMES = set(_NOT_NAMES_WORDS.split())


@dataclass
class Found:
    entities: dict[str, str] = field(default_factory=dict)  # name -> type
    aliases: dict[str, list[str]] = field(default_factory=dict)  # name -> other names
    relations: list[tuple[str, str, str]] = field(default_factory=list)  # (subject, predicate, object)

    def add(self, name: str, type_: str) -> None:
        if name == SELF:
            return
        if self.entities.get(name, "concept") == "concept":  # a rule with a type beats a bare capital
            self.entities[name] = type_


def _clean(name: str) -> str:
    words = name.strip(" ,.;:!?'’").split()
    while words and words[-1] in _NOT_NAMES:
        words.pop()
    return " ".join(words)


def _who(word: str) -> str:
    return SELF if word == "I" else _clean(word)


def extract(text: str) -> Found:
    """Entities and relations the rules see in one message (the first EXTRACT_CHARS of its words)."""
    # A name is a few short words: a run of 64+ characters without a space (a key, base64, a pasted blob)
    # is none, and would make the name patterns backtrack over it at every position (quadratic: a 40 kB
    # word held the process for minutes).
    text = _BLOB.sub(" ", text)[:EXTRACT_CHARS]
    found = Found()
    for m in _MY_REL.finditer(text):
        rel, name = m.group(1).lower(), _clean(m.group(2))
        if name and name not in _NOT_NAMES:
            found.add(name, "pet" if re.fullmatch(PETS, rel) else "person")
            found.relations.append((SELF, rel, name))
    for m in _IS_MY.finditer(text):
        name, rel = _clean(m.group(1)), m.group(2).lower()
        if name and name not in _NOT_NAMES:
            found.add(name, "pet" if re.fullmatch(PETS, rel) else "person")
            found.relations.append((SELF, rel, name))
    for pattern, predicate, type_ in ((_WORK, "works at", "organization"), (_LIVE, "lives in", "place")):
        for m in pattern.finditer(text):
            who, what = _who(m.group(1)), _clean(m.group(2))
            if who and what and what not in _NOT_NAMES:
                found.add(what, type_)
                found.add(who, "person")
                found.relations.append((who, predicate, what))
    for m in _FROM.finditer(text):
        place = _clean(m.group(1))
        if place:
            found.add(place, "place")
            found.relations.append((SELF, "is from", place))
    for m in _ORG.finditer(text):
        found.add(_clean(m.group(1) or m.group(2)), "organization")
    for m in _PROJECT.finditer(text):
        name = _clean(m.group(1))
        if name and name not in _NOT_NAMES:
            found.add(name, "project")
    for m in _AKA.finditer(text):
        name, alias = _clean(m.group(1)), _clean(m.group(2) or m.group(3))
        if name and alias:
            found.add(name, "person")
            found.aliases.setdefault(name, []).append(alias)
    for m in _EMAIL.finditer(text):
        found.add(m.group(0), "contact")
    for m in _URL.finditer(text):
        found.add(m.group(0).rstrip(".,;"), "link")
    for m in _CAPS.finditer(text):
        name = _clean(m.group(1))
        if name and name not in _NOT_NAMES and len(name) > 1 and not _inside_known(name, found):
            found.add(name, "concept")
    for alias in {a for names in found.aliases.values() for a in names}:
        if found.entities.get(alias) == "concept":
            del found.entities[alias]  # another name of an entity already found
    return found


def _inside_known(name: str, found: Found) -> bool:
    return any(name != known and name in known for known in found.entities)


def mentioned_names(text: str) -> list[str]:
    """Words and word pairs/triples of a message that could be an entity's name or alias (for priming)."""
    words = re.findall(r"[\w'’@.+-]+", text)
    out = {w.strip(".'’") for w in words}
    out |= {" ".join(words[i:i + 2]) for i in range(len(words) - 1)}
    out |= {" ".join(words[i:i + 3]) for i in range(len(words) - 2)}
    return [w for w in out if len(w) > 1][:300]


_LLM_PROMPT = """Extract the named entities and relations from the numbered messages below.
Answer with JSON only, one object: {"items": [{"message": N, "entities": [{"name": ..., "type": one of person, pet,
place, organization, project, concept}], "relations": [{"subject": name or "@self" for the writer, "predicate":
short verb phrase, "object": name}]}]}

"""


async def llm_extract(llm: LLM, model: str, texts: list[str]) -> list[Found]:
    """The model's reading of a batch of messages; one Found per message (empty when it answered badly)."""
    numbered = "\n".join(f"{i}. {t[:1000]}" for i, t in enumerate(texts))
    result = await llm.chat([{"role": "user", "content": _LLM_PROMPT + numbered}], model=model, bot="memory",
                            max_tokens=1024)
    out = [Found() for _ in texts]
    try:
        data: Any = json.loads(result.text[result.text.index("{"):result.text.rindex("}") + 1])
        for item in data.get("items", []):
            found = out[int(item["message"])]
            for e in item.get("entities", []):
                found.add(str(e["name"]).strip(), str(e.get("type") or "concept"))
            for r in item.get("relations", []):
                subject = SELF if r["subject"] == "@self" else str(r["subject"]).strip()
                found.relations.append((subject, str(r["predicate"]).strip().lower(), str(r["object"]).strip()))
                found.add(str(r["object"]).strip(), "concept")
                found.add(subject, "concept")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass  # a malformed answer teaches nothing; the rules' findings stand
    return out
