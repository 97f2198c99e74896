// The special tokens every clinvqa tokenizer carries, in id order: ids 0..6 are fixed so that model
// code can rely on them without reading the tokenizer (e.g. the padding id is always 6).
export const SPECIAL_TOKENS = ['<image>', '<think>', '</think>', '<answer>', '</answer>', '<eos>', '<pad>'] as const;

export type SpecialToken = (typeof SPECIAL_TOKENS)[number];

export const THINK_OPEN = '<think>';
export const THINK_CLOSE = '</think>';
export const ANSWER_OPEN = '<answer>';
export const ANSWER_CLOSE = '</answer>';
