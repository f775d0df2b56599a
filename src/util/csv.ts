/**
 * CSV as RFC 4180 writes it, the one helper for every CSV neXt-Ray writes or reads (predictions, study results, the
 * sweep's Table 1, split files, adapt's labels): a value holding a comma, a double quote, CR or LF is enclosed in
 * double quotes, with each double quote doubled; null and undefined are empty cells. Readers work a line at a time,
 * so a quoted value cannot span lines (nothing neXt-Ray writes holds a line break). Browser-safe.
 */
export function csvField(value: unknown): string {
  const s = value === null || value === undefined ? '' : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * One CSV line's fields as RFC 4180 reads them: a quoted field may hold commas and `""` for one quote, and is kept
 * as written; unquoted fields are trimmed. Null when the quoting is malformed (a quote never closed, or text after a
 * closing quote before the next comma), so a reader can report the line instead of guessing.
 */
export function parseCsvLine(line: string): string[] | null {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= line.length) return null; // unterminated quote
        const c = line[i]!;
        if (c === '"') {
          if (line[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += c;
        i++;
      }
      fields.push(value);
      if (i === line.length) return fields;
      if (line[i] !== ',') return null;
      i++;
    } else {
      const comma = line.indexOf(',', i);
      if (comma < 0) {
        fields.push(line.slice(i).trim());
        return fields;
      }
      fields.push(line.slice(i, comma).trim());
      i = comma + 1;
    }
  }
}

/**
 * parseCsvLine for readers that check columns themselves (adapt's labels CSV, here and in the page): every field
 * trimmed, and a malformed line is one field holding the whole line, which such a reader rejects as a bad row.
 */
export function csvFields(line: string): string[] {
  return (parseCsvLine(line) ?? [line]).map((s) => s.trim());
}
