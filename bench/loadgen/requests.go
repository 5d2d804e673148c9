package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// maxRequestNodes bounds the YAML nodes ParseRequests expands, aliases
// included, so that a file of nested aliases (a "billion laughs") fails
// instead of exhausting memory.
const maxRequestNodes = 1 << 20

// ParseRequests decodes request messages from YAML or JSON (JSON being
// YAML): a document is one message or a list of messages, and a file may
// hold several documents separated by "---". Each message is written as
// protojson writes it (camelCase or proto field names, enums by name,
// 64-bit integers as numbers or strings), so what `grpcurl` or ghz take
// works here too; unknown fields are errors, naming the message's line.
func ParseRequests(data []byte, newMessage func() proto.Message) ([]proto.Message, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var (
		msgs   []proto.Message
		budget = maxRequestNodes
	)
	for doc := 1; ; doc++ {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse requests: document %d: %w", doc, err)
		}
		if len(root.Content) == 0 {
			continue
		}
		node := resolve(root.Content[0])
		if node.Kind == yaml.ScalarNode && node.ShortTag() == "!!null" {
			continue // an empty document, such as after a trailing ---
		}
		items := []*yaml.Node{node}
		if node.Kind == yaml.SequenceNode {
			items = node.Content
		}
		for _, item := range items {
			m, err := decodeMessage(item, newMessage, &budget)
			if err != nil {
				return nil, fmt.Errorf("parse requests: document %d: message %d at line %d: %w", doc, len(msgs)+1, item.Line, err)
			}
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		return nil, errors.New("parse requests: no messages")
	}
	return msgs, nil
}

func decodeMessage(n *yaml.Node, newMessage func() proto.Message, budget *int) (proto.Message, error) {
	if n = resolve(n); n.Kind != yaml.MappingNode {
		return nil, errors.New("a message must be a mapping")
	}
	v, err := jsonValue(n, budget, 0)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("re-encode as JSON: %w", err)
	}
	m := newMessage()
	if err := protojson.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// resolve follows aliases (the decoder has already bounded their depth).
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// jsonValue turns a YAML node into what encoding/json writes as the same
// JSON: mappings with string keys, sequences, and scalars by their tag.
// Integers stay json.Number so that 64-bit values keep every digit.
func jsonValue(n *yaml.Node, budget *int, depth int) (any, error) {
	*budget--
	if *budget < 0 {
		return nil, fmt.Errorf("more than %d YAML nodes (aliases expanded)", maxRequestNodes)
	}
	if depth > 100 {
		return nil, errors.New("nested more than 100 levels")
	}
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		obj := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return nil, fmt.Errorf("line %d: a key must be a plain string", k.Line)
			}
			if _, dup := obj[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			v, err := jsonValue(n.Content[i+1], budget, depth+1)
			if err != nil {
				return nil, err
			}
			obj[k.Value] = v
		}
		return obj, nil
	case yaml.SequenceNode:
		arr := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := jsonValue(c, budget, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case yaml.ScalarNode:
		return scalarValue(n)
	default:
		return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
	}
}

func scalarValue(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return b, nil
	case "!!int":
		// YAML allows 0x1F, 0o17 and 1_000; JSON wants decimal digits.
		var i int64
		if err := n.Decode(&i); err == nil {
			return json.Number(fmt.Sprint(i)), nil
		}
		var u uint64
		if err := n.Decode(&u); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return json.Number(fmt.Sprint(u)), nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		// protojson writes non-finite floats as these strings.
		switch {
		case math.IsNaN(f):
			return "NaN", nil
		case math.IsInf(f, 1):
			return "Infinity", nil
		case math.IsInf(f, -1):
			return "-Infinity", nil
		}
		return f, nil
	default:
		// Strings, and timestamps and binary as written: protojson takes
		// RFC 3339 strings and base64 for those.
		return n.Value, nil
	}
}
