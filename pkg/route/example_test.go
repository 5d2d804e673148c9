package route_test

import (
	"errors"
	"fmt"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/route"
)

func Example() {
	docs, _ := catalog.Decode("petstore.yaml", []byte(`apiVersion: portcullis.dev/v1alpha1
kind: API
metadata: {name: petstore}
spec:
  version: v1
  basePath: /petstore/v1
  security: [none]
  operations:
    - {method: GET, path: "/pets/{id}"}
    - {method: GET, path: /pets/mine}
`))
	snap, _ := catalog.Build(docs)
	table := route.New(snap)

	m, _ := table.Match("api.example.com", "GET", "/petstore/v1/pets/42?api_key=k")
	fmt.Println(m.API.ID, m.Op.Name, m.Params(), m.Query)

	m, _ = table.Match("api.example.com", "GET", "/petstore/v1/pets/mine")
	fmt.Println(m.Op.Name)

	_, err := table.Match("api.example.com", "GET", "/petstore/v1/pets/%2e%2e/mine")
	fmt.Println(errors.Is(err, route.ErrBadPath), err)
	// Output:
	// petstore:v1 GET /pets/{id} [{id 42}] api_key=k
	// GET /pets/mine
	// true path refused: encoded dot
}
