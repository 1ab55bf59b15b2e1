"""How the user likes to be answered ("keep it short", "I prefer bullet points", "don't call me sir"),
and "remember that ..." notes: detected by rules, no model needed.

A preference has a key: a newer one on the same key replaces the older ("keep it short" then
"give me more detail" leaves only the second)."""

from __future__ import annotations

import re

_I = re.IGNORECASE
_RULES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"\b(keep (it|them|answers|replies) (short|brief)|be (more )?(brief|concise|short)|shorter "
                r"(answers|replies)|too long|tl;?dr|sois bref|soyez br[eè]fs?|s[eé] breve|fasse? dich kurz)\b", _I),
     "length", "Keep answers short."),
    (re.compile(r"\b(more detail(ed)?|longer (answers|replies)|go (into|in) (more )?depth|elaborate more)\b", _I),
     "length", "Give detailed answers."),
    (re.compile(r"\b(prefer|use|like|want|give me|with|in)\s+(\w+\s+)?bullet[- ]?points?\b|\bbullet points,? please\b",
                _I), "format", "Use bullet points."),
    (re.compile(r"\b(no|without|don'?t use|stop using|fewer) emojis?\b", _I), "emoji", "Don't use emojis."),
]
_DONT_CALL = re.compile(r"\b(?:don'?t|do not|never|stop) call(?:ing)? me ['\"]?([\w .'-]{1,30}?)['\"]?(?=[.!,;]|$)", _I)
_CALL_ME = re.compile(r"(?<!t )(?<!not )\bcall me ['\"]?([A-Z][\w'-]{0,30})['\"]?", 0)
_LANGUAGE = re.compile(r"\b(?:answer|reply|respond|talk|speak|write)(?: to me)? in (English|French|Spanish|German|"
                       r"Italian|Portuguese|Dutch|Japanese|Chinese|Korean|Russian|Arabic|Polish|Turkish)\b", _I)
_GENERIC = re.compile(r"\bI(?:\s+prefer|'d prefer|\s+would prefer|'d rather|\s+would rather|\s+like it when you|"
                      r"\s+want you to)\s+"
                      r"([^.!?\n]{3,120})", _I)

_REMEMBER = re.compile(
    r"^\s*(?:@\w+[,:]?\s+)*(?:please\s+|hey\s+|ok\s+)?(?:(?:please\s+)?remember|don'?t forget|never forget|keep in mind|"
    r"note|souviens-toi|rappelle-toi|n'oublie pas|recuerda|no olvides|merk dir|vergiss nicht)"
    r"(?:\s+(?:that|que|qu'|dass)\s*|\s*:\s*)(.+)$", _I | re.DOTALL)


def detect(text: str) -> list[tuple[str, str]]:
    """(key, preference text) pairs the message states; empty for most messages."""
    found: dict[str, str] = {}
    for pattern, key, pref in _RULES:
        if pattern.search(text):
            found[key] = pref
    for m in _DONT_CALL.finditer(text):
        name = m.group(1).strip()
        found[f"not-called:{name.lower()}"] = f"Never call them '{name}'."
    m = _CALL_ME.search(text)
    if m and not _DONT_CALL.search(text):
        found["name"] = f"Call them {m.group(1)}."
    m = _LANGUAGE.search(text)
    if m:
        found["language"] = f"Answer in {m.group(1).capitalize()}."
    if not found:
        for m in _GENERIC.finditer(text):
            wish = m.group(1).strip().rstrip(",;")
            found["prefers:" + " ".join(wish.lower().split()[:6])] = f"Prefers: {wish}."
    return list(found.items())


def remember_note(text: str) -> str | None:
    """The note in "remember that ..." (English, French, Spanish, German); None for other messages."""
    m = _REMEMBER.match(text)
    if not m:
        return None
    note = m.group(1).strip()
    return note[0].upper() + note[1:] if len(note) >= 3 else None
