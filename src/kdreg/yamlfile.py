"""Reading a params file with limits. params.yaml is read before any job runs, by `kdreg check` and at every
Snakemake start, so a mistaken or hostile file must be refused quickly and in words, never by exhausting memory:

- at most :data:`MAX_BYTES` bytes, and UTF-8 (a bad byte is named by line and column);
- YAML aliases (``*name`` repeats the whole value of ``&name``; aliases of aliases multiply, the "billion
  laughs") may expand the file to at most :data:`MAX_VALUES` values, counted on the composed node graph before
  any Python object is built; no alias inside its own anchor (a recursive value);
- at most :data:`MAX_ITEMS` items in a list and :data:`MAX_DEPTH` levels of nesting (the YAML composer recurses
  per level, so deeper files would end in a RecursionError);
- no key given twice in one mapping (plain YAML keeps the last silently).
"""
from __future__ import annotations

import shlex
from pathlib import Path

import yaml

MAX_BYTES = 1_000_000   # the committed params.yaml is ~14 kB
MAX_VALUES = 100_000    # every scalar, list and mapping counts once per place it appears, aliases expanded
MAX_ITEMS = 10_000      # in any one list
MAX_DEPTH = 50          # the committed file nests 7 levels (datasets.sinusoid.teacher.model.hidden.0)


class _Refused(Exception):
    """A limit hit while composing or measuring: the problem and where it is (a YAML mark)."""

    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem, self.mark = problem, mark


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing while it composes (before the whole file is parsed) a list past
    :data:`MAX_ITEMS`, more than :data:`MAX_VALUES` values written out, nesting past :data:`MAX_DEPTH`; and, while
    it constructs, a key given twice. It notes whether any alias is used, so a size refusal can say why."""

    def __init__(self, stream):
        super().__init__(stream)
        self._path, self._values, self.aliased = [], 0, False  # _path: keys and list indices down to this node

    def _key(self, parts: int = MAX_DEPTH) -> str:
        path = [str(p) for p in self._path if p is not None]
        return ".".join(path[:parts]) + (".…" if len(path) > parts else "")

    def compose_node(self, parent, index):
        if isinstance(parent, yaml.SequenceNode) and index >= MAX_ITEMS:
            raise _Refused(f"{self._key() or 'the file'}: a list of more than {MAX_ITEMS:,} items; a params file's "
                           f"lists may hold at most {MAX_ITEMS:,}: shorten it", parent.start_mark)
        if self.check_event(yaml.AliasEvent):
            self.aliased = True  # measured once composed (_measure): its value is already counted here
        else:
            self._values += 1
            if self._values > MAX_VALUES:
                raise _Refused(f"the file holds more than {MAX_VALUES:,} values, the limit of a params file (the "
                               "committed params.yaml holds about 700): is it the right file? Keep params.yaml to "
                               "settings", self.peek_event().start_mark)
        # a mapping value's index is its key node; a key's is None; a list item's is its position
        self._path.append(index.value if isinstance(index, yaml.ScalarNode) else index)
        try:
            if len(self._path) > MAX_DEPTH:
                raise _Refused(f"{self._key(3)}: values nest more than {MAX_DEPTH} levels deep (the limit of a params "
                               "file, whose own nesting is 7); flatten it", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                lines = f"lines {seen[key] + 1} and {key_node.start_mark.line + 1}"
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice ({lines}); keep one",
                                                        key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _child(key: str, part) -> str:
    return f"{key}.{part}" if key else str(part)


def _measure(node, key: str, depth: int, sizes: dict, open_: set) -> int:
    """The number of values ``node`` expands to, aliases repeated; a node reached twice (an alias) is measured
    once (``sizes``), so an alias bomb costs as little to measure as it took to write. Refuses the first (so the
    smallest) value past the limit, named by the key path where it is first found, at the line it is written."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_:
        raise _Refused(f"{key or 'the file'}: an alias (*name) inside the value of its own anchor (&name) makes a "
                       "value that holds itself; write the value out", node.start_mark)
    if depth > MAX_DEPTH:
        raise _Refused(f"{key}: aliases nest values more than {MAX_DEPTH} levels deep (the limit of a params "
                       "file); write the values out", node.start_mark)
    open_.add(id(node))
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_measure(v, _child(key, i), depth + 1, sizes, open_) for i, v in enumerate(node.value))
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _measure(k, key, depth + 1, sizes, open_)
            size += _measure(v, _child(key, k.value if isinstance(k, yaml.ScalarNode) else "?"), depth + 1, sizes,
                             open_)
    open_.discard(id(node))
    if size > MAX_VALUES:
        raise _Refused(f"{key or 'the file'}: expands to {size:,} values through YAML aliases (*name repeats the "
                       f"whole value of &name, so aliases of aliases multiply); a params file may hold at most "
                       f"{MAX_VALUES:,}: write the values out, or use fewer aliases", node.start_mark)
    sizes[id(node)] = size
    return size


def _decode(path: Path, raw: bytes) -> str:
    """The file's text; a byte that is not UTF-8 is named by line and column, with the encoding it seems to be in
    and a conversion that works for that encoding."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = err.start
    line, line_start = raw.count(b"\n", 0, bad) + 1, raw.rfind(b"\n", 0, bad) + 1
    column = len(raw[line_start:bad].decode("utf-8")) + 1  # in characters, as an editor counts them
    where = f"{path}, line {line}, column {column}: byte 0x{raw[bad]:02x}"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # a byte-order mark: Windows' "Unicode" is UTF-16
        seems, encoding = " (the file is saved as UTF-16)", "UTF-16"
    else:
        try:  # most often a Windows or Latin-1 editor's file: convertible when every byte is Windows-1252
            raw.decode("cp1252")
            seems, encoding = f" ({raw[bad:bad + 1].decode('cp1252')!r} in Windows-1252)", "WINDOWS-1252"
        except UnicodeDecodeError:
            seems, encoding = "", None
    quoted = shlex.quote(str(path))
    convert = (f", or convert it: iconv -f {encoding} -t UTF-8 {quoted} > {quoted}.utf8 && mv {quoted}.utf8 {quoted}"
               if encoding else "")
    raise ValueError(f"{where}{seems} is not UTF-8, and params files are read as UTF-8: save the file as UTF-8 "
                     f"(your editor's 'save with encoding'){convert}")


def read_yaml(path) -> object:
    """The one YAML document of ``path``, within the limits above; ValueError naming the file, the line, the
    key, the limit and the fix, for a file past a limit, one that is not UTF-8, invalid YAML, or a key given
    twice."""
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read(MAX_BYTES + 1)  # never more: the size is refused before the file is held
        if len(raw) > MAX_BYTES:
            size = max(path.stat().st_size, len(raw))  # a pipe's size reads as 0
            raise ValueError(f"{path} is {size:,} bytes; a params file may be at most {MAX_BYTES:,} bytes (the "
                             "committed params.yaml is about 14 kB): is it the right file? Move large lists into "
                             "data files (a table's path) and keep params.yaml to settings")
    loader = _StrictLoader(_decode(path, raw))
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if loader.aliased:  # without aliases, composing counted every value
            _measure(node, "", 0, {}, set())
        return loader.construct_document(node)
    except _Refused as err:
        raise ValueError(f"{path}, line {err.mark.line + 1}: {err.problem}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    finally:
        loader.dispose()
