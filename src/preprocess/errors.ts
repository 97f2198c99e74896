// Typed errors for images a client uploaded. Every rejection of client input in src/preprocess
// is an ImageInputError, so the HTTP layer can map it to an RFC 7807 problem+json response with
// one `instanceof` check; anything else escaping preprocessing is a server bug (500).

export type ImageInputErrorCode =
  | 'image_missing'
  | 'image_too_large_bytes'
  | 'image_too_large_pixels'
  | 'unsupported_media_type'
  | 'dicom_unsupported_transfer_syntax'
  | 'dicom_unsupported_pixel_format'
  | 'image_unreadable';

export type ImageInputErrorStatus = 400 | 413 | 415 | 422;

// The status follows from the code, so a thrower cannot pair a code with the wrong status.
// 415: the bytes are a kind of image we do not decode (the client can convert and retry);
// 422: the bytes claim to be a supported kind but are corrupt, truncated or inconsistent.
const STATUS_BY_CODE: Record<ImageInputErrorCode, ImageInputErrorStatus> = {
  image_missing: 400,
  image_too_large_bytes: 413,
  image_too_large_pixels: 413,
  unsupported_media_type: 415,
  dicom_unsupported_transfer_syntax: 415,
  dicom_unsupported_pixel_format: 415,
  image_unreadable: 422,
};

export class ImageInputError extends Error {
  override readonly name = 'ImageInputError';
  readonly status: ImageInputErrorStatus;
  readonly code: ImageInputErrorCode;

  /** `message` is shown to the client: say what is wrong with their file, never internal paths. */
  constructor(code: ImageInputErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = STATUS_BY_CODE[code];
  }
}

/** Text of anything thrown by a third-party decoder (dicom-parser throws plain strings and objects). */
export function describeThrown(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === 'string') return thrown;
  if (typeof thrown === 'object' && thrown !== null && 'exception' in thrown) {
    return describeThrown((thrown as { exception: unknown }).exception);
  }
  return String(thrown);
}
