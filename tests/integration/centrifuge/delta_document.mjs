// What the delta tests publish and compare: successive versions of one document, and the
// bytes the SDK handed the application.

// Version v of a document: `bytes` of text in which a few bytes move with v.
export function documentText(v, bytes) {
  const chars = [];
  for (let i = 0; chars.length < bytes - 40; i++) chars.push('abcdefghij'[(i * 7) % 10]);
  for (let k = 0; k < 3; k++) chars[(v * 97 + k * 3331) % chars.length] = 'XYZ'[k];
  return JSON.stringify({ version: v, text: chars.join('') });
}

// The data's bytes as the app got them: Protobuf hands the raw bytes, JSON the parsed value
// (whose text is the published text: it was compact JSON).
export function bytesOf(protobuf, data) {
  return protobuf ? Buffer.from(data).toString('utf8') : JSON.stringify(data);
}
