// The README's shell blocks, by the section they sit in: the tests that run them as written
// (test/e2e/readme.test.ts on this machine, the VM's systemd phase for the install on a node,
// test/kube for the kubectl commands) read them from here, so the README cannot drift from
// what is tested.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ShellBlock {
  /** The `## ` heading the block sits under. */
  section: string;
  /** One command per entry: continuation lines joined, comments and blank lines kept out. */
  commands: string[];
}

export function readmeShellBlocks(readme = path.join(__dirname, '..', '..', 'README.md')): ShellBlock[] {
  const blocks: ShellBlock[] = [];
  let section = '';
  let open: string[] | undefined;
  for (const line of fs.readFileSync(readme, 'utf8').split('\n')) {
    if (open) {
      if (line.startsWith('```')) {
        blocks.push({ section, commands: commandsOf(open) });
        open = undefined;
      } else open.push(line);
    } else if (line.startsWith('## ')) section = line.slice(3).trim();
    else if (line.trim() === '```sh') open = [];
  }
  return blocks;
}

function commandsOf(lines: string[]): string[] {
  const commands: string[] = [];
  let pending = '';
  for (const raw of lines) {
    const line = withoutComment(raw).trim();
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1).trim() + ' ';
      continue;
    }
    const command = (pending + line).trim();
    pending = '';
    if (command) commands.push(command);
  }
  return commands;
}

/** A `#` that starts a word begins a comment (as in sh); one inside a word or quotes does not. */
function withoutComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] ?? ''))) return line.slice(0, i);
  }
  return line;
}

export function sectionCommands(section: string): string[] {
  const blocks = readmeShellBlocks().filter((b) => b.section === section);
  if (blocks.length === 0) throw new Error(`README has no shell block under "## ${section}"`);
  return blocks.flatMap((b) => b.commands);
}
