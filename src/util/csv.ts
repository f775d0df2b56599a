/**
 * CSV cells as RFC 4180 writes them: a value holding a comma, a double quote, CR or LF is enclosed in double quotes,
 * with each double quote doubled; null and undefined are empty cells. The one quoting helper for every CSV written
 * (predictions, study results, the sweep's Table 1), and its reader for one line. Browser-safe.
 */
export function csvField(value: unknown): string {
  const s = value === null || value === undefined ? '' : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One CSV line's fields (RFC 4180 quotes: "" inside quotes is one quote), each trimmed. */
export function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') q = false;
      else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}
