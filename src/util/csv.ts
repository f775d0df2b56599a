/**
 * CSV cells as RFC 4180 writes them: a value holding a comma, a double quote, CR or LF is enclosed in double quotes,
 * with each double quote doubled; null and undefined are empty cells. The one quoting helper for every CSV written
 * (predictions, study results, the sweep's Table 1). Browser-safe.
 */
export function csvField(value: unknown): string {
  const s = value === null || value === undefined ? '' : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
