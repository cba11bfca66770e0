package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/labels"
)

// ListOptions select one page of a list, in the manner of Kubernetes'
// limit and continue.
type ListOptions struct {
	Selector labels.Selector // nil: every object
	Limit    int             // most objects on the page; 0: no limit
	Continue string          // the Continue of the page before; "": from the start
}

// Page is one page of a list, sorted by name.
type Page[T Object] struct {
	Items []T
	// Continue asks for the next page; "" on the last one. Pages are not
	// one snapshot: an object created or deleted between two pages is
	// seen or not according to its name, and none is seen twice.
	Continue string
}

// ErrInvalidContinue: a continue token that no list of this store gave.
var ErrInvalidContinue = errors.New("invalid continue token")

// ContinueToken is the token of a page that ended with name: opaque to
// clients, the name in base64url. Lists cut out of a store's pages (the
// API's filtered ones) end their own pages with it.
func ContinueToken(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

// ContinueAfter is the name a token continues after; "" for no token.
func ContinueAfter(token string) (string, error) {
	if token == "" {
		return "", nil
	}
	return continueAfter(token)
}

// continueAfter is the name a token continues after.
func continueAfter(token string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) == 0 || !utf8.Valid(b) {
		return "", fmt.Errorf("%w: start the list again without it", ErrInvalidContinue)
	}
	return string(b), nil
}

// pageOf cuts the page opts asks for out of objects sorted by name.
func pageOf[T Object](sorted []T, opts ListOptions) (Page[T], error) {
	return cutPage(len(sorted), func(i int) T { return sorted[i] }, opts)
}

// cutPage cuts the page opts asks for out of n objects sorted by name,
// the i-th of which at(i) gives; the page holds them as given.
func cutPage[T Object](n int, at func(int) T, opts ListOptions) (Page[T], error) {
	start := 0
	if opts.Continue != "" {
		after, err := continueAfter(opts.Continue)
		if err != nil {
			return Page[T]{}, err
		}
		start = sort.Search(n, func(i int) bool { return at(i).GetName() > after })
	}
	var p Page[T]
	for i := start; i < n; i++ {
		o := at(i)
		if opts.Selector != nil && !opts.Selector.Matches(labels.Set(o.GetLabels())) {
			continue
		}
		if opts.Limit > 0 && len(p.Items) == opts.Limit {
			p.Continue = ContinueToken(p.Items[len(p.Items)-1].GetName())
			break
		}
		p.Items = append(p.Items, o)
	}
	return p, nil
}

// listPage is ListPage for a store that can only list everything: the
// page is cut out of the whole list.
func listPage[T Object](ctx context.Context, r interface {
	List(context.Context) ([]T, error)
}, noun string, opts ListOptions) (Page[T], error) {
	all, err := r.List(ctx)
	if err != nil {
		return Page[T]{}, err
	}
	p, err := pageOf(all, opts)
	if err != nil {
		return Page[T]{}, fmt.Errorf("list %ss: %w", noun, err)
	}
	return p, nil
}
