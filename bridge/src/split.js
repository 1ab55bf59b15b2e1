// Split a long reply into WhatsApp-sized parts at the most natural boundary available.
// WhatsApp accepts ~65k characters, but long bubbles read badly: keep parts <= 4000.

export const MAX_CHUNK = 4000;

// Boundaries in order of preference: paragraph, line, sentence end, word.
const BOUNDARIES = ['\n\n', '\n', '. ', ' '];

/**
 * @param {string} text
 * @param {number} [limit]
 * @returns {string[]} parts, each at most `limit` UTF-16 units long (none for blank text)
 */
export function splitText(text, limit = MAX_CHUNK) {
  if (!Number.isInteger(limit) || limit < 2) throw new RangeError('limit must be an integer >= 2');
  const parts = [];
  let rest = text;
  while (rest.length > limit) {
    const cut = findCut(rest, limit);
    const head = rest.slice(0, cut).trimEnd();
    if (head) parts.push(head);
    rest = rest.slice(cut).replace(/^\s+/, '');
  }
  if (rest.trim()) parts.push(rest);
  return parts;
}

function findCut(text, limit) {
  const window = text.slice(0, limit);
  for (const sep of BOUNDARIES) {
    const at = window.lastIndexOf(sep);
    // A boundary in the first quarter would leave a tiny part: look for a better one.
    if (at >= limit / 4) return at + sep.length;
  }
  // No boundary: hard cut, but never between the two halves of a surrogate pair.
  const code = text.charCodeAt(limit - 1);
  return code >= 0xd800 && code <= 0xdbff ? limit - 1 : limit;
}
