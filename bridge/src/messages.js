// Turn one Baileys WAMessage into the bridge's `message` frame (or null when there is nothing to forward).
import {
  areJidsSameUser,
  extractMessageContent,
  getContentType,
  isJidGroup,
  isJidStatusBroadcast,
} from '@whiskeysockets/baileys';

// Message types whose text we forward; everything else (stickers, reactions, polls, ...) is skipped.
const TEXT_OF = {
  conversation: (content) => content,
  extendedTextMessage: (content) => content.text,
  imageMessage: (content) => content.caption,
  videoMessage: (content) => content.caption,
  documentMessage: (content) => content.caption,
};

/** Unix seconds from a protobuf timestamp (number, numeric string or Long). */
export function toSeconds(value) {
  if (value == null) return 0;
  if (typeof value === 'object' && typeof value.toNumber === 'function') return value.toNumber();
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

/** True when `jid` names one of our own identities (phone-number JID or LID, any device). */
export function isSelf(jid, selfJids) {
  if (!jid) return false;
  return selfJids.some((self) => self && areJidsSameUser(jid, self));
}

/**
 * @param {object} msg Baileys WAMessage
 * @param {string[]} selfJids our own JIDs (sock.user.id and sock.user.lid)
 * @returns {object|null} the `message` frame without its `type`
 */
export function toInbound(msg, selfJids) {
  const key = msg?.key;
  if (!key?.remoteJid || !key.id || key.fromMe) return null;
  if (isJidStatusBroadcast(key.remoteJid)) return null;

  const content = extractMessageContent(msg.message);
  const kind = getContentType(content);
  const textOf = TEXT_OF[kind];
  const text = textOf ? textOf(content[kind]) : null;
  if (typeof text !== 'string' || !text.trim()) return null;

  const isGroup = Boolean(isJidGroup(key.remoteJid));
  const context = kind === 'conversation' ? undefined : content[kind]?.contextInfo;
  const mentioned = Array.isArray(context?.mentionedJid) ? context.mentionedJid : [];
  return {
    id: key.id,
    chatId: key.remoteJid,
    sender: isGroup ? key.participant || '' : key.remoteJid,
    // Baileys 7 addresses many users by LID; the alternate (usually phone-number) JID helps allow-lists.
    senderAlt: (isGroup ? key.participantAlt : key.remoteJidAlt) || null,
    pushName: msg.pushName || null,
    text,
    timestamp: toSeconds(msg.messageTimestamp),
    isGroup,
    mentionedMe: mentioned.some((jid) => isSelf(jid, selfJids)),
    // contextInfo.participant is the author of the quoted message.
    replyToMe: isSelf(context?.participant, selfJids),
  };
}
