package tui

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/client"
)

// The program benchmarks run the console in a real tea.Program (no
// terminal: output discarded) over a cache of 10,000 devices, and time
// what a user waits for: the first frame, and the frame after a key.
// The daemon behind the client accepts requests and never answers, so
// that no connection message changes the screen while it is timed; the
// cache is filled before the program starts, so listing the fleet from
// the daemon is not part of the figures.

// frameModel runs a Model and reports, on frames, each View that holds
// every one of want.
type frameModel struct {
	*Model
	want   []string
	frames chan time.Time
}

func (f *frameModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	_, cmd := f.Model.Update(msg)
	return f, cmd
}

func (f *frameModel) View() string {
	s := f.Model.View()
	for _, w := range f.want {
		if !strings.Contains(s, w) {
			return s
		}
	}
	select {
	case f.frames <- time.Now():
	default:
	}
	return s
}

// benchFleet is n devices made from the one in testdata.
func benchFleet(b *testing.B, n int) ([]v1alpha1.Device, func() time.Time) {
	base := load[v1alpha1.Device](b, "device.json")
	now := base.Status.LastSeen.Add(time.Minute)
	devs := make([]v1alpha1.Device, n)
	boards := []string{"mps2-an385", "nrf52840-dk", "stm32f746g-disco", "esp32-devkitc"}
	for i := range devs {
		d := base.DeepCopy()
		d.Name = fmt.Sprintf("dev-%05d", i)
		d.Spec.Board = boards[i%len(boards)]
		d.Status.RTTMicros = int64(100 + i%5000)
		devs[i] = *d
	}
	return devs, func() time.Time { return now }
}

// silentDaemon is an API that takes requests and never answers them.
func silentDaemon(b *testing.B) *client.Client {
	// A request of a program's last commands may still be on its way when
	// the benchmark ends: closing stop answers it too.
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	b.Cleanup(func() {
		close(stop)
		srv.CloseClientConnections()
		srv.Close()
	})
	c, err := client.New(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// startProgram starts a program of a new console over devs at 80x24 and
// returns it with the time it started; frames reports views holding
// want.
func startProgram(b *testing.B, c *client.Client, devs []v1alpha1.Device, now func() time.Time, want ...string) (*tea.Program, *frameModel, time.Time, chan error) {
	start := time.Now()
	m, err := New(Options{Client: c, Address: "http://127.0.0.1:3001", Now: now})
	if err != nil {
		b.Fatal(err)
	}
	m.sh.cache.reset(devs, nil, nil, true)
	m.refresh()
	fm := &frameModel{Model: m, want: want, frames: make(chan time.Time, 1)}
	p := tea.NewProgram(fm, tea.WithInput(nil), tea.WithOutput(io.Discard), tea.WithoutSignalHandler())
	done := make(chan error, 1)
	go func() {
		_, err := p.Run()
		done <- err
	}()
	// A terminal reports its size when the program starts; here the
	// benchmark does.
	p.Send(tea.WindowSizeMsg{Width: termWidth, Height: termHeight})
	return p, fm, start, done
}

func stopProgram(b *testing.B, p *tea.Program, fm *frameModel, done chan error) {
	p.Quit()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	fm.Close()
}

func waitFrame(b *testing.B, fm *frameModel) time.Time {
	select {
	case t := <-fm.frames:
		return t
	case <-time.After(waitLimit):
		b.Fatal("no frame")
		return time.Time{}
	}
}

// BenchmarkFirstFrame times a console's start over 10,000 devices: from
// creating the model and starting its program to the first View that
// shows the devices table.
func BenchmarkFirstFrame(b *testing.B) {
	devs, now := benchFleet(b, 10000)
	c := silentDaemon(b)
	var total time.Duration
	for b.Loop() {
		p, fm, start, done := startProgram(b, c, devs, now, "Devices (10000)", "NAME", "dev-00000")
		total += waitFrame(b, fm).Sub(start)
		b.StopTimer()
		stopProgram(b, p, fm, done)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/frame")
}

// BenchmarkKeyToFrame times the frame after a key over 10,000 devices:
// from sending the key message to the next View that shows its effect.
// "j" and "k" move the cursor; "B" sorts the table by board (again:
// reverses), which orders all 10,000 rows.
func BenchmarkKeyToFrame(b *testing.B) {
	devs, now := benchFleet(b, 10000)
	c := silentDaemon(b)
	for _, tc := range []struct {
		name string
		keys []string
	}{
		{"move", []string{"j", "k"}},
		{"sort", []string{"B"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p, fm, _, done := startProgram(b, c, devs, now, "Devices (10000)", "NAME")
			defer stopProgram(b, p, fm, done)
			waitFrame(b, fm)
			var total time.Duration
			i := 0
			for b.Loop() {
				k := tc.keys[i%len(tc.keys)]
				i++
				// A frame drawn since (the clock's) is not the key's.
				select {
				case <-fm.frames:
				default:
				}
				start := time.Now()
				p.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)})
				total += waitFrame(b, fm).Sub(start)
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/frame")
		})
	}
}
