package credential_test

import (
	"fmt"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/credential"
)

func ExampleRead() {
	api := &catalog.CompiledAPI{APIKeyHeaders: []string{"x-api-key"}, APIKeyQueryParams: []string{"api_key"}}
	op := &catalog.CompiledOperation{API: api, Security: catalog.SecurityOAuth2 | catalog.SecurityAPIKey}

	c, err := credential.Read(op, map[string]string{"x-api-key": "pcl_test_abc"}, "limit=10&api_key=pcl_test_abc")
	fmt.Println(c, err)
	fmt.Println(c.HeadersToRemove(), c.QueryParamsToRemove())

	_, err = credential.Read(op, map[string]string{"authorization": "Basic dXNlcjpwYXNz"}, "")
	fmt.Println(err)
	// Output:
	// credential(apiKey from header x-api-key: [REDACTED]) <nil>
	// [x-api-key] [api_key]
	// read credential from header authorization: authorization scheme is not Bearer: invalid credential
}
