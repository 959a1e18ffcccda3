# Part of scripts/check_layers.sh: prints "PARENT FROM TO" for every reference from module FROM
# to a sibling module TO (both children of PARENT, "crate" at the top), read from the Rust files
# listed on standard input (`root` is the crate's src/ folder). A reference is any
# `crate::a::b`, `super::x` or `self::x` path (comments too), resolved to the deepest module
# it names; an ancestor or a descendant is not a sibling.
function modpath(f,   p) {
  p = substr(f, length(root) + 1)
  sub(/\.rs$/, "", p)
  sub(/(^|\/)(mod|lib|main)$/, "", p)
  gsub("/", "::", p)
  return p
}
function parent(m) { if (m !~ /::/) return ""; sub(/::[^:]*$/, "", m); return m }
function known_prefix(path,   n, parts, i, best, cur) {
  n = split(path, parts, "::"); best = ""; cur = ""
  for (i = 1; i <= n; i++) {
    cur = (i == 1) ? parts[1] : cur "::" parts[i]
    if (cur in known) best = cur
  }
  return best
}
{ file[NR] = $0; known[modpath($0)] = 1 }
END {
  for (f = 1; f <= NR; f++) {
    m = modpath(file[f])
    while ((getline line < file[f]) > 0) {
      rest = line
      while (match(rest, /(crate|super|self)(::[A-Za-z_][A-Za-z0-9_]*)+/)) {
        ref = substr(rest, RSTART, RLENGTH); rest = substr(rest, RSTART + RLENGTH)
        base = m
        if (ref ~ /^crate::/) { base = ""; ref = substr(ref, 8) }
        else if (ref ~ /^self::/) { ref = substr(ref, 7) }
        else {
          while (ref ~ /^super::/) { base = parent(base); ref = substr(ref, 8) }
        }
        target = known_prefix(base == "" ? ref : base "::" ref)
        if (target == "") continue
        # The level where the two paths part: siblings there.
        nm = split(m, a, "::"); nt = split(target, b, "::")
        if (m == "") nm = 0
        common = ""; i = 1
        while (i <= nm && i <= nt && a[i] == b[i]) { common = (i == 1) ? a[i] : common "::" a[i]; i++ }
        if (i > nm || i > nt) continue   # ancestor or descendant: not siblings
        print (common == "" ? "crate" : common), a[i], b[i]
      }
    }
    close(file[f])
  }
}
