import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_CHUNK, splitText } from '../src/split.js';

test('short text is one part, blank text none', () => {
  assert.deepEqual(splitText('hello'), ['hello']);
  assert.deepEqual(splitText('  \n '), []);
});

test('splits at paragraphs first, then lines, then words', () => {
  assert.deepEqual(splitText('aaaa bbbb\n\ncccc dddd', 12), ['aaaa bbbb', 'cccc dddd']);
  assert.deepEqual(splitText('aaaa bbbb\ncccc dddd', 12), ['aaaa bbbb', 'cccc dddd']);
  assert.deepEqual(splitText('aaaa bbbb cccc dddd', 12), ['aaaa bbbb', 'cccc dddd']);
});

test('every part fits and no text is lost', () => {
  const paragraphs = Array.from({ length: 40 }, (_, i) => `Paragraph ${i}: ${'word '.repeat(60 + i)}`.trim());
  const text = paragraphs.join('\n\n');
  const parts = splitText(text);
  assert.ok(parts.length > 1);
  assert.ok(parts.every((p) => p.length <= MAX_CHUNK));
  assert.equal(parts.join('\n\n'), text, 'paragraph splits keep every paragraph whole');
});

test('text without boundaries is cut hard but never inside a surrogate pair', () => {
  const parts = splitText('x'.repeat(9) + '😀'.repeat(5), 10);
  assert.ok(parts.every((p) => p.length <= 10 && !/[\ud800-\udbff]$/.test(p)));
  assert.equal(parts.join(''), 'x'.repeat(9) + '😀'.repeat(5));
});

test('a bad limit is refused', () => {
  assert.throws(() => splitText('abc', 1), RangeError);
});
