// Cuts a text into pieces of whole lines, about `chars` long each: a parser of a large kernel
// file (/proc/diskstats, mountinfo with 10,000 mounts) parses one piece, then gives the event loop
// back before the next.

/** [from, to) offsets of consecutive pieces that end at a line end (or the end of the text). */
export function* linePieces(text: string, chars: number): Generator<[from: number, to: number]> {
  for (let from = 0; from < text.length; ) {
    const cut = text.indexOf('\n', Math.min(text.length, from + chars));
    const to = cut < 0 ? text.length : cut + 1;
    yield [from, to];
    from = to;
  }
}
