#!/usr/bin/env bash
# SoftHSM2 for the PKCS#11 tests (crates/airisk-keys-pkcs11, the HSM end-to-end test of airisk
# serve): installs Debian's `softhsm2` when missing, makes two fresh tokens in a temporary
# directory with a random PIN, and prints the variables the tests read, for `eval`:
#
#   eval "$(bash scripts/setup-softhsm.sh)"
#
#   SOFTHSM2_CONF                  the temporary SoftHSM2 configuration (tokens live beside it)
#   AIRISK_SOFTHSM_DIR             that directory (remove it when done)
#   AIRISK_TEST_PKCS11_MODULE      the SoftHSM2 PKCS#11 module
#   AIRISK_TEST_PKCS11_TOKEN       the token the tests make their keys in
#   AIRISK_TEST_PKCS11_PIN_TOKEN   a second token, only for the wrong-PIN test (PKCS#11 login
#                                  state is per process and token, so no other test may use it)
#   AIRISK_TEST_PKCS11_PIN         the user PIN of both tokens
#
# Progress goes to stderr; only the export lines go to stdout. Nothing outside the temporary
# directory is touched apart from the package installation.
set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }

if ! command -v softhsm2-util >/dev/null 2>&1; then
  say "installing softhsm2 (Debian package) for the PKCS#11 tests"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get install -y -qq softhsm2 >/dev/null 2>&1 \
    || { "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq softhsm2 >/dev/null; }
fi

module=""
for candidate in /usr/lib/softhsm/libsofthsm2.so \
  "/usr/lib/$(uname -m)-linux-gnu/softhsm/libsofthsm2.so" /usr/local/lib/softhsm/libsofthsm2.so; do
  if [ -f "$candidate" ]; then module=$candidate; break; fi
done
if [ -z "$module" ]; then
  echo "error: the SoftHSM2 PKCS#11 module (libsofthsm2.so) was not found" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/airisk-softhsm.XXXXXX")
mkdir -p "$dir/tokens"
cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF="$dir/softhsm2.conf"

# Random PINs for a throwaway token; they are test values, printed for the tests to read.
pin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
so_pin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
for label in airisk-test airisk-pin-test; do
  softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null
done
say "SoftHSM2 $(softhsm2-util --version): tokens airisk-test and airisk-pin-test in $dir"

printf 'export SOFTHSM2_CONF=%q\n' "$SOFTHSM2_CONF"
printf 'export AIRISK_SOFTHSM_DIR=%q\n' "$dir"
printf 'export AIRISK_TEST_PKCS11_MODULE=%q\n' "$module"
printf 'export AIRISK_TEST_PKCS11_TOKEN=%q\n' airisk-test
printf 'export AIRISK_TEST_PKCS11_PIN_TOKEN=%q\n' airisk-pin-test
printf 'export AIRISK_TEST_PKCS11_PIN=%q\n' "$pin"
