/**
 * An emulation of Go's `text/tabwriter` (flags 0: no HTML filtering, no escapes, left aligned).
 *
 * Text is collected into tab-terminated cells; a column block is a run of consecutive lines that
 * all have a cell in that column (text after a line's last tab is not a cell). Written text is
 * appended to {@link TabWriter.output}; a line consisting of a single cell (no tab) causes an
 * implicit flush, exactly as in Go.
 *
 * @module
 */

interface Cell {
  text: string;
  /** Width in runes (Unicode code points). */
  width: number;
  /** Terminated by a tab. */
  htab: boolean;
}

function runeCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** A Go-compatible `tabwriter.Writer` that writes into a string buffer. */
export class TabWriter {
  /** All text produced so far by flushes. */
  output = "";
  readonly minwidth: number;
  readonly tabwidth: number;
  readonly padding: number;
  readonly padchar: string;

  #lines: Cell[][] = [[]];
  #cell = "";
  #widths: number[] = [];

  /** Same parameters as Go's `tabwriter.NewWriter(out, minwidth, tabwidth, padding, padchar, 0)`. */
  constructor(minwidth: number, tabwidth: number, padding: number, padchar: string) {
    if (minwidth < 0 || tabwidth < 0 || padding < 0) {
      throw new Error("negative minwidth, tabwidth, or padding");
    }
    this.minwidth = minwidth;
    this.tabwidth = tabwidth;
    this.padding = padding;
    this.padchar = padchar;
  }

  /** Writes text (like `fmt.Fprint(tw, s)`). */
  write(s: string): this {
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const ch = s[i];
      if (ch === "\t" || ch === "\v" || ch === "\n" || ch === "\f") {
        this.#cell += s.slice(start, i);
        start = i + 1;
        const ncells = this.#terminateCell(ch === "\t");
        if (ch === "\n" || ch === "\f") {
          this.#lines.push([]);
          if (ch === "\f" || ncells === 1) this.#flushNoDefers();
        }
      }
    }
    this.#cell += s.slice(start);
    return this;
  }

  /** Flushes buffered text to {@link output} (Go `Flush`). */
  flush(): this {
    this.#flushNoDefers();
    return this;
  }

  /** Returns and clears the text produced so far (after flushes). */
  take(): string {
    const out = this.output;
    this.output = "";
    return out;
  }

  #terminateCell(htab: boolean): number {
    const line = this.#lines[this.#lines.length - 1];
    line.push({ text: this.#cell, width: runeCount(this.#cell), htab });
    this.#cell = "";
    return line.length;
  }

  #flushNoDefers(): void {
    if (this.#cell.length > 0) this.#terminateCell(false);
    this.#format(0, this.#lines.length);
    // reset
    this.#lines = [[]];
    this.#cell = "";
    this.#widths = [];
  }

  #writePadding(textw: number, cellw: number, useTabs: boolean): void {
    if (this.padchar === "\t" || useTabs) {
      if (this.tabwidth === 0) return;
      cellw = Math.ceil(cellw / this.tabwidth) * this.tabwidth;
      const n = cellw - textw;
      if (n < 0) throw new Error("internal error");
      this.output += "\t".repeat(Math.ceil(n / this.tabwidth));
      return;
    }
    this.output += this.padchar.repeat(cellw - textw);
  }

  #writeLines(line0: number, line1: number): void {
    for (let i = line0; i < line1; i++) {
      const line = this.#lines[i];
      for (let j = 0; j < line.length; j++) {
        const c = line[j];
        if (c.text.length === 0) {
          if (j < this.#widths.length) this.#writePadding(c.width, this.#widths[j], false);
        } else {
          this.output += c.text;
          if (j < this.#widths.length) this.#writePadding(c.width, this.#widths[j], false);
        }
      }
      if (i + 1 === this.#lines.length) {
        // last buffered line: no newline, only the incomplete cell (empty after a flush)
        this.output += this.#cell;
      } else {
        this.output += "\n";
      }
    }
  }

  #format(line0: number, line1: number): void {
    const column = this.#widths.length;
    for (let th = line0; th < line1; th++) {
      let line = this.#lines[th];
      if (column >= line.length - 1) continue;
      // cell exists in this column => this line starts a block
      this.#writeLines(line0, th);
      line0 = th;
      let width = this.minwidth;
      for (; th < line1; th++) {
        line = this.#lines[th];
        if (column >= line.length - 1) break;
        const w = line[column].width + this.padding;
        if (w > width) width = w;
      }
      this.#widths.push(width);
      this.#format(line0, th);
      this.#widths.pop();
      line0 = th;
    }
    this.#writeLines(line0, line1);
  }
}

/** Renders `text` through a fresh tabwriter with the given settings and flushes it. */
export function tabwrite(
  text: string,
  minwidth = 1,
  tabwidth = 8,
  padding = 1,
  padchar = "\t",
): string {
  return new TabWriter(minwidth, tabwidth, padding, padchar).write(text).flush().take();
}
