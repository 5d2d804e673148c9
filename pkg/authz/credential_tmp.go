package authz

import (
	"strings"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// found is the credential a request carries and where it was found.
type found struct {
	kind       CredentialKind // CredentialAPIKey, or CredentialJWT for any bearer token
	value      string
	header     string // the header it came in, to remove
	queryParam string // the query parameter it came in, to remove
}

// findCredential is a stand-in until pkg/credential lands.
func findCredential(op *catalog.CompiledOperation, headers map[string]string, query string) (found, bool) {
	if op.Security.Has(catalog.SecurityOAuth2) {
		if v, ok := headers["authorization"]; ok && len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return found{kind: CredentialJWT, value: strings.TrimSpace(v[7:]), header: "authorization"}, true
		}
	}
	if op.Security.Has(catalog.SecurityAPIKey) {
		for _, h := range op.API.APIKeyHeaders {
			if v, ok := headers[h]; ok && v != "" {
				return found{kind: CredentialAPIKey, value: v, header: h}, true
			}
		}
		for _, q := range op.API.APIKeyQueryParams {
			if v, ok := queryParam(query, q); ok && v != "" {
				return found{kind: CredentialAPIKey, value: v, queryParam: q}, true
			}
		}
	}
	return found{}, false
}
