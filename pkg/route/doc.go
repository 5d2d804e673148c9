// Package route finds the API and operation a request is for: host, base
// path, method and path template.
//
// It is the first step of authz's decision, before any credential is read:
// the operation says which credentials are accepted, which scopes are
// needed and which policies count the request. A Table is built once per
// catalog Snapshot (New), and Match then costs a few map lookups and no
// scan of the catalog's APIs or an API's operations.
//
// # Resolution
//
//   - The query string is split off at the first "?"; Match.Query keeps it
//     for the credential reader. Envoy never passes a fragment.
//   - The host (Envoy's :authority) is compared in lower case, without its
//     port and without a trailing dot. An API listing hosts serves only
//     those; an API without hosts serves every host.
//   - The longest base path that is a prefix of the path at a segment
//     boundary wins (/petstore/v1 serves /petstore/v1 and /petstore/v1/pets,
//     never /petstore/v10). At equal length, an API listing the host wins
//     over one serving every host. The base path "/" serves everything no
//     longer base path claims.
//   - Among the API's operations of the request's method, the most specific
//     template wins, compared segment by segment from the left: a literal
//     beats {param}, which beats "*", which beats "**"; a template that
//     ends where the path ends beats one that goes on with "**". So GET
//     /pets/mine beats GET /pets/{id}, and /a/{x}/c beats /{y}/b/c for
//     /a/b/c. The catalog refuses two templates of one method that would
//     tie.
//   - {param} and "*" match one non-empty segment; "**" (last only) matches
//     the rest of the path, possibly nothing.
//   - A single trailing slash is ignored: /pets/ is /pets. Serving it under
//     another operation ("/**", say) would let a trailing slash pick a more
//     permissive operation for what most upstreams treat as the same
//     resource.
//   - HEAD falls back to GET. A HEAD operation in the catalog is used when
//     one matches; otherwise a HEAD request is matched as GET, since every
//     HTTP server answers HEAD as GET without the body: the GET operation's
//     credentials, scopes and policies are the right ones, and refusing HEAD
//     would break clients that probe a resource with it. Match.Op is then
//     the GET operation, and that is what metadata and analytics report.
//
// # Paths that are refused
//
// The path is matched as Envoy normalised it (normalize_path and
// merge_slashes on, as Istio sets them), but authz does not rely on that:
// a path that could mean something else to the upstream than to this
// matcher is refused with ErrBadPath, never matched, so that a crafted
// path cannot reach a resource under a more permissive operation. The
// rules follow Spring Security's StrictHttpFirewall, which guards the
// same gap between a gateway's view and a framework's:
//
//   - "." and ".." segments, and encoded dots (%2E), slashes (%2F),
//     backslashes (%5C), percent signs (%25, which double-decoding upstreams
//     would turn into any of these) and semicolons (%3B);
//   - raw backslashes, semicolons (Tomcat and Spring strip ";params" from a
//     segment, so /admin;x would reach /admin while matching /{any}), "#",
//     empty segments ("//"), control characters, spaces and bytes outside
//     ASCII (a client sends those percent-encoded);
//   - encoded NUL and control characters, and malformed escapes ("%zz").
//
// Other percent-encoded characters are decoded before a segment is
// compared with a literal, so /%61dmin is /admin and cannot slip past a
// literal to a {param}. Parameter values from Match.Params are returned as
// they appear in the path, still encoded.
package route
