#!/usr/bin/env bash
# Brings src/Transformers.ML/PublicAPI.Unshipped.txt up to date with the code after a deliberate change of the public
# surface: builds the library, adds the symbols the analyzer reports as undeclared (RS0016) and drops the ones it
# reports as declared but gone (RS0017). Review the diff of the file: it is the change of the public API.
# At a release, move the lines of PublicAPI.Unshipped.txt into PublicAPI.Shipped.txt.
set -euo pipefail
cd "$(dirname "$0")/../src/Transformers.ML"
log=$(mktemp)
dotnet build -c Release --no-incremental -p:TreatWarningsAsErrors=false 2>&1 > "$log" || true
added=$(grep -oE "RS0016: Symbol '.*' is not part of the declared" "$log" | sed -E "s/^RS0016: Symbol '(.*)' is not part of the declared$/\1/" | sort -u || true)
removed=$(grep -oE "RS0017: Symbol '.*' is part of the declared API" "$log" | sed -E "s/^RS0017: Symbol '(.*)' is part of the declared API$/\1/" | sort -u || true)
rm -f "$log"
body=$( (grep -v '^#nullable enable$' PublicAPI.Unshipped.txt || true; printf '%s\n' "$added") | grep . | sort -u || true)
if [ -n "$removed" ]; then
  body=$(printf '%s\n' "$body" | grep -vxF -f <(printf '%s\n' "$removed") || true)
fi
{ echo '#nullable enable'; printf '%s\n' "$body" | grep . || true; } > PublicAPI.Unshipped.txt.tmp
mv PublicAPI.Unshipped.txt.tmp PublicAPI.Unshipped.txt
echo "PublicAPI.Unshipped.txt: $(printf '%s' "$added" | grep -c . || true) added, $(printf '%s' "$removed" | grep -c . || true) removed."
