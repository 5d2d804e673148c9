// Package apikey is everything Portcullis knows about an API key apart from
// where a request carries it (pkg/credential) and whose it is (the catalog,
// by hash): the key format, its hash, and the checks a key's own
// restrictions ask for.
//
// On the request path it runs in authz after pkg/credential has read the
// key: CheckFormat refuses a mistyped Portcullis key without a lookup, Hash
// turns the key into the catalog's lookup key (Snapshot.ApplicationByKeyHash),
// ClientAddr picks the address the key's CIDRs are checked against, and
// Check applies the key's expiry, CIDRs and referrers. Off the request path,
// Generate makes new keys for cmd/apikey.
//
// # Key format
//
// A Portcullis key reads
//
//	pcl_<env>_<43 base62 random characters><6 base62 checksum characters>
//
// for example pcl_live_4Cz…Qw0000aZ. The parts:
//
//   - "pcl_" says the key is Portcullis's, so that secret scanners (GitHub
//     secret scanning, gitleaks, trufflehog) can match it with the regular
//     expression `\bpcl_(live|test)_[0-9A-Za-z]{49}\b` and confirm a hit
//     offline with the checksum, as GitHub's own ghp_ tokens allow.
//   - <env> is "live" or "test", so that a human, a log line showing only a
//     key's prefix, or a scanner can tell a production key from a sandbox
//     one without a lookup. It is a label only: the key type that counts is
//     the catalog's keyType.
//   - 43 characters of base62 carry 256 bits of randomness (43 × log2 62 ≈
//     256.03), drawn from crypto/rand by rejection sampling so that every
//     character is uniform.
//   - The checksum is the CRC-32 (IEEE) of everything before it, in six
//     base62 digits, most significant first, zero-padded. A typo or a
//     truncated copy fails it, so authz refuses the key without touching the
//     catalog and says why.
//
// Underscores rather than hyphens keep the whole key one "word": a double
// click selects all of it.
//
// Only keys beginning "pcl_live_" or "pcl_test_" are held to this format.
// Any other string is a key migrated from another system and goes straight
// to the lookup by hash.
//
// # Timing
//
// The catalog is indexed by SHA-256, never by the key, so the lookup's
// timing depends on the hash, which an attacker cannot steer towards a real
// key's hash without a preimage. The checksum is not secret: it is computed
// from the rest of the presented string, so comparing it in variable time
// tells a caller nothing it did not already have. No comparison in this
// package touches a stored secret.
package apikey
