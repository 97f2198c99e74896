// Errors for a Hugging Face model folder that cannot be served as it is. Every message names the
// file (and the tensor, with the shapes, where one is at fault), because the operator who fixes it
// has only the server log to go on.

export class HfFolderError extends Error {
  override name = 'HfFolderError';
  constructor(
    message: string,
    /** Path of the offending file. */
    readonly file: string,
    /** The tensor at fault, when there is one. */
    readonly tensor?: string,
  ) {
    super(message);
  }
}

/** `[1, 2, 3]`: shapes as they appear in the messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
