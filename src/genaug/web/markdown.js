// A small, safe Markdown renderer for evaluation reports: headings, tables, lists, code, paragraphs.
// Everything becomes text nodes (no innerHTML); images in the report are shown separately.

import { h } from './dom.js';

function inline(text) {
  // `code`, **bold**, *em*; anything else is plain text.
  const parts = [];
  const pattern = /(`[^`]+`|\*\*[^*]+\*\*|\*[^*\s][^*]*\*)/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) parts.push(text.slice(last, match.index));
    const token = match[0];
    if (token.startsWith('`')) parts.push(h('code', {}, token.slice(1, -1)));
    else if (token.startsWith('**')) parts.push(h('strong', {}, token.slice(2, -2)));
    else parts.push(h('em', {}, token.slice(1, -1)));
    last = match.index + token.length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

// A row's cells: split on unescaped pipes only; "\|" inside a cell is a literal pipe.
const cells = (line) => line.trim().replace(/^\|/, '').replace(/(?<!\\)\|$/, '').split(/(?<!\\)\|/)
  .map((c) => c.trim().replace(/\\\|/g, '|'));

/** Render Markdown text into a <div>; heading levels start at `baseLevel` so the page outline stays in order. */
export function renderMarkdown(text, baseLevel = 3) {
  const out = h('div', { class: 'markdown' });
  const lines = String(text || '').replace(/\r\n/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    if (line.startsWith('```')) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].startsWith('```')) body.push(lines[i++]);
      i++;
      out.append(h('pre', {}, h('code', {}, body.join('\n'))));
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      const level = Math.min(6, baseLevel + heading[1].length - 1);
      out.append(h(`h${level}`, {}, inline(heading[2])));
      i++;
      continue;
    }
    if (line.trim().startsWith('|') && i + 1 < lines.length && /^\s*\|?\s*:?-{2,}/.test(lines[i + 1])) {
      const header = cells(line);
      i += 2;
      const body = [];
      while (i < lines.length && lines[i].trim().startsWith('|')) body.push(cells(lines[i++]));
      out.append(h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, header.map((c) => h('th', { scope: 'col' }, inline(c))))),
        h('tbody', {}, body.map((row) => h('tr', {}, row.map((c) => h('td', {}, inline(c)))))))));
      continue;
    }
    if (/^\s*([-*]|\d+\.)\s+/.test(line)) {
      const ordered = /^\s*\d+\./.test(line);
      const list = h(ordered ? 'ol' : 'ul');
      while (i < lines.length && /^\s*([-*]|\d+\.)\s+/.test(lines[i])) {
        list.append(h('li', {}, inline(lines[i].replace(/^\s*([-*]|\d+\.)\s+/, ''))));
        i++;
      }
      out.append(list);
      continue;
    }
    if (/^!\[[^\]]*\]\([^)]*\)\s*$/.test(line.trim())) {
      i++; // report images are listed in result.files and shown as figures
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !/^(#{1,6}\s|```|\s*\||\s*([-*]|\d+\.)\s+)/.test(lines[i])) para.push(lines[i++]);
    if (!para.length) para.push(lines[i++]);
    out.append(h('p', {}, inline(para.join(' '))));
  }
  return out;
}
