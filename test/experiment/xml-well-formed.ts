// A strict-enough XML well-formedness check for the SVGs the experiment writes (no XML parser is a
// dependency): one root element, every tag closed in order, attributes quoted and unique, and no raw
// '<' or stray '&' in text or attribute values. Returns the element names in document order.
const NAME = '[A-Za-z_][\\w.:-]*';
const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;

function checkText(text: string, where: string): void {
  if (text.includes('<')) throw new Error(`raw '<' in ${where}`);
  if (text.replace(ENTITY, '').includes('&')) throw new Error(`stray '&' in ${where}`);
}

export function wellFormedXml(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const tag = new RegExp(`^<(/?)(${NAME})((?:\\s+${NAME}\\s*=\\s*(?:"[^"]*"|'[^']*'))*)\\s*(/?)>`);
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = lt < 0 ? xml.slice(i) : xml.slice(i, lt);
    checkText(text, `text at ${i}`);
    if (stack.length === 0 && text.trim()) throw new Error(`text outside the root element at ${i}`);
    if (lt < 0) break;
    if (xml.startsWith('<?xml', lt)) {
      const end = xml.indexOf('?>', lt);
      if (end < 0 || lt !== 0) throw new Error('bad XML declaration');
      i = end + 2;
      continue;
    }
    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt);
      if (end < 0) throw new Error('unterminated comment');
      i = end + 3;
      continue;
    }
    const m = tag.exec(xml.slice(lt));
    if (!m) throw new Error(`malformed tag at ${lt}: ${xml.slice(lt, lt + 40)}`);
    const [whole, closing, name, attrs, selfClosing] = m;
    if (closing) {
      if (attrs.trim() || selfClosing) throw new Error(`malformed end tag </${name}>`);
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open ?? 'nothing'}>`);
    } else {
      if (stack.length === 0 && ++roots > 1) throw new Error('more than one root element');
      const seen = new Set<string>();
      for (const a of attrs.matchAll(new RegExp(`(${NAME})\\s*=\\s*(?:"([^"]*)"|'([^']*)')`, 'g'))) {
        if (seen.has(a[1])) throw new Error(`attribute ${a[1]} twice on <${name}>`);
        seen.add(a[1]);
        checkText(a[2] ?? a[3] ?? '', `attribute ${a[1]} of <${name}>`);
      }
      names.push(name);
      if (!selfClosing) stack.push(name);
    }
    i = lt + whole.length;
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) throw new Error('no root element');
  return names;
}
