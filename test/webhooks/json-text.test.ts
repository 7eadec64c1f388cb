// isJsonText must give JSON.parse's verdict on every input, without parsing into values.
import fc from 'fast-check';
import t from 'tap';
import { isJsonText } from '../../src/routes/hooks/json-text.js';

function parses(bytes: Uint8Array): boolean {
  try {
    JSON.parse(Buffer.from(bytes).toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

const agrees = (bytes: Uint8Array) => isJsonText(bytes) === parses(bytes);
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);

t.test('hand-picked texts: the same verdict as JSON.parse', async (t) => {
  const cases = [
    ['{}', true], ['[]', true], [' { } ', true], ['[ ]', true], ['0', true], ['-0', true], ['-0.5e+10', true], ['1E5', true],
    ['"a"', true], ['"\\u00e9\\n\\"\\\\\\/\\b\\f\\r\\t"', true], ['"\\ud800"', true], ['true', true], ['false', true], ['null', true],
    ['{"a":[1,{"b":null}],"c":"d"}', true], ['\t\r\n[1]\n', true], ['"é ✓ 😀"', true],
    ['', false], [' ', false], ['{', false], ['}', false], ['[1,]', false], ['{"a":1,}', false], ['{"a"}', false], ['{a:1}', false],
    ['01', false], ['1.', false], ['.5', false], ['-', false], ['1e', false], ['+1', false], ['0x10', false], ['NaN', false],
    ['tru', false], ['nul', false], ['truex', false], ['"abc', false], ['"\\x"', false], ['"\\u12"', false], ['"a\nb"', false],
    ['[1] [2]', false], ['{"a":1}}', false], ['[1}', false], ['{"a":1]', false], ["'a'", false], ['\u00a0[]', false], ['\ufeff{}', false],
  ] as const;
  for (const [text, valid] of cases) {
    const bytes = Buffer.from(text);
    t.equal(parses(bytes), valid, `JSON.parse ${JSON.stringify(text)}`);
    t.equal(isJsonText(bytes), valid, `isJsonText ${JSON.stringify(text)}`);
  }
});

t.test('bytes that are not UTF-8: accepted inside strings, refused elsewhere, as after decoding', async (t) => {
  for (const bytes of [
    Buffer.from([0x22, 0xff, 0xfe, 0x22]),
    Buffer.from([0x22, 0xc3, 0x22]),
    Buffer.from([0x5b, 0xff, 0x5d]),
    Buffer.from([0x22, 0x61, 0x22, 0x80]),
    Buffer.from([0x22, 0x00, 0x22]),
  ]) {
    t.ok(agrees(bytes), bytes.toString('hex'));
  }
});

t.test('deep nesting and large bodies are checked without recursion', async (t) => {
  const depth = 100_000;
  t.equal(isJsonText(Buffer.from('['.repeat(depth) + ']'.repeat(depth))), true);
  t.equal(isJsonText(Buffer.from('['.repeat(depth) + ']'.repeat(depth - 1))), false);
  t.equal(isJsonText(Buffer.from('{"a":'.repeat(depth) + '1' + '}'.repeat(depth))), true);
  const large = Buffer.from(JSON.stringify({ padding: 'x'.repeat(1_000_000), list: Array.from({ length: 10_000 }, (_, n) => n) }));
  t.equal(isJsonText(large), true);
});

t.test('property: any JSON value, serialized in any spacing, is accepted', async () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.constantFrom(undefined, 0, 2, '\t'), (value, space) => isJsonText(Buffer.from(JSON.stringify(value, null, space) ?? 'null'))),
    { numRuns: RUNS },
  );
});

t.test('property: JSON with one byte inserted, deleted or replaced gets the same verdict as JSON.parse', async () => {
  const structural = fc.constantFrom(...'{}[]",:\\ -+.0123456789eEtfnu'.split('').map((c) => c.charCodeAt(0)), 0x00, 0x0a, 0x1f, 0x7f, 0x80, 0xc3, 0xff);
  fc.assert(
    fc.property(fc.json(), fc.nat(), structural, fc.constantFrom('insert', 'delete', 'replace'), (text, at, byte, edit) => {
      const bytes = [...Buffer.from(text)];
      const position = at % (bytes.length + 1);
      if (edit === 'insert') bytes.splice(position, 0, byte);
      else if (edit === 'delete') bytes.splice(position, 1);
      else bytes.splice(position, 1, byte);
      return agrees(Uint8Array.from(bytes));
    }),
    { numRuns: RUNS * 5 },
  );
});

t.test('property: random bytes and random strings get the same verdict as JSON.parse', async () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), agrees), { numRuns: RUNS });
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'{}[]",:\\ \t\n-+.0123456789eEtrufalsn'.split('')), maxLength: 40 }), (text) => agrees(Buffer.from(text))),
    { numRuns: RUNS * 5 },
  );
});
