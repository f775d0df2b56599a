/**
 * Command-line arguments as the bytes the user typed (Node only). Node decodes argv as UTF-8, so a file name that
 * is not valid UTF-8 (`f\xff.png`) reaches process.argv with U+FFFD in place of its bytes and can no longer be
 * opened. On Linux the kernel keeps the original bytes in /proc/self/cmdline; `argBytes` finds an argument there.
 */
import { readFileSync } from 'node:fs';

let cmdline: Buffer[] | null | undefined;

/** process.argv's entries after the script, as raw bytes, when /proc/self/cmdline agrees with process.argv. */
function rawUserArgs(): Buffer[] | null {
  if (cmdline !== undefined) return cmdline;
  cmdline = null;
  try {
    const parts: Buffer[] = [];
    const all = readFileSync('/proc/self/cmdline');
    let start = 0;
    for (let i = 0; i < all.length; i++) {
      if (all[i] === 0) {
        parts.push(all.subarray(start, i));
        start = i + 1;
      }
    }
    const user = process.argv.slice(2);
    if (parts.length < user.length) return cmdline;
    const tail = parts.slice(parts.length - user.length);
    // Only when every argument decodes to what Node has: then the two lists are the same arguments.
    if (tail.every((b, i) => b.toString('utf8') === user[i])) cmdline = tail;
  } catch {
    // No /proc (macOS, Windows): arguments stay as Node decoded them.
  }
  return cmdline;
}

/**
 * The bytes of each of `args`, command-line arguments in the order they were given (as commander passes a variadic
 * argument on): the original bytes of one that held bytes that are not UTF-8 (it then contains U+FFFD) when the
 * original is known, else its UTF-8 encoding. Two arguments that decode alike are told apart by their order.
 */
export function argsAsBytes(args: readonly string[]): Buffer[] {
  const raw = rawUserArgs();
  const used = new Set<number>();
  return args.map((arg) => {
    if (!arg.includes('\uFFFD') || !raw) return Buffer.from(arg);
    for (let i = 0; i < raw.length; i++) {
      if (used.has(i) || raw[i]!.toString('utf8') !== arg || raw[i]!.equals(Buffer.from(arg))) continue;
      used.add(i);
      return raw[i]!;
    }
    return Buffer.from(arg);
  });
}
