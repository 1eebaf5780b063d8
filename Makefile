# l4lb — plain `make` builds build/l4lb; `make test` builds and runs every test.
#   make test SANITIZE=1   same under AddressSanitizer + UBSan (objects in build/san)
#   make test SANITIZE=thread   under ThreadSanitizer (build/tsan), for workers > 1
#   make demo              installs what is missing, builds, starts the demo
#   make deps              installs the Debian packages (scripts/install-deps.sh)
#   make deb               build/l4lb_VERSION_ARCH.deb (scripts/install-deps.sh --package first)

CXX      ?= g++
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
PREFIX   ?= /usr/local
DESTDIR  ?=
SBINDIR  ?= $(PREFIX)/sbin
UNITDIR  ?= /lib/systemd/system
MANDIR   ?= $(PREFIX)/share/man
DOCDIR   ?= $(PREFIX)/share/doc/l4lb
VERSION  := 0.1.0

ifeq ($(SANITIZE),1)
BUILD    := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      := -O1 -g
else ifeq ($(SANITIZE),thread)
BUILD    := build/tsan
SANFLAGS := -fsanitize=thread
OPT      := -O1 -g
else
BUILD    := build
SANFLAGS :=
OPT      := -O2 -g
endif

CPPFLAGS += -Iinclude -DL4LB_VERSION='"$(VERSION)"' -MMD -MP
CXXFLAGS += -std=c++20 $(OPT) -Wall -Wextra -Wshadow -Wno-unused-parameter $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)
LDLIBS   := -lev -lyaml-cpp -lfmt -lsystemd -lcares -lpthread

LIB_SRC  := $(filter-out src/main.cpp,$(shell find src -name '*.cpp' | sort))
LIB_OBJ  := $(LIB_SRC:%.cpp=$(BUILD)/obj/%.o)
UNIT_SRC := $(shell find test/unit -name '*.cpp' | sort)
UNIT_OBJ := $(UNIT_SRC:%.cpp=$(BUILD)/obj/%.o)
TESTD_SRC := $(wildcard test/testd/*.cpp)
TESTD_OBJ := $(TESTD_SRC:%.cpp=$(BUILD)/obj/%.o)

.PHONY: all test unit integration demo deps clean install check-deps bench fuzz valgrind deb
all: check-deps $(BUILD)/l4lb $(BUILD)/l4lb-testd

# From a fresh clone the first build installs what is missing (idempotent, fast when done).
check-deps:
	@scripts/install-deps.sh

$(BUILD)/l4lb: $(BUILD)/obj/src/main.o $(BUILD)/libl4lb.a
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libl4lb.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(BUILD)/l4lb-testd: $(TESTD_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ -lpthread

$(BUILD)/unit-tests: $(UNIT_OBJ) $(BUILD)/libl4lb.a
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.cpp $(BUILD)/flags | check-deps
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c -o $@ $<

# Rebuild everything when the compiler flags change.
$(BUILD)/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CXX) $(CPPFLAGS) $(CXXFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CXX) $(CPPFLAGS) $(CXXFLAGS) $(LDFLAGS)' > $@
FORCE:

test: all $(BUILD)/unit-tests
	@scripts/install-deps.sh --test
	@scripts/run-tests.sh $(BUILD)

# ns per pick for every algorithm at 10/100/1000 backends (exit 1 if any is over 250 ns).
$(BUILD)/select-bench: $(BUILD)/obj/bench/select_bench.o $(BUILD)/libl4lb.a
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench: $(BUILD)/select-bench
	$(BUILD)/select-bench --runs 9

FUZZ_SECONDS ?= 30
# libFuzzer targets (clang, ASan+UBSan) in build/fuzz, FUZZ_SECONDS each; a crash is
# saved to test/fuzz/regressions/ (replayed on every run) and fails the target.
fuzz:
	@scripts/install-deps.sh --test
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# Integration subset with l4lb under valgrind memcheck (errors or definite leaks fail).
valgrind: all
	@scripts/install-deps.sh --test
	@scripts/valgrind.sh $(BUILD)

demo:
	@scripts/demo.sh

deps:
	@scripts/install-deps.sh

install: $(BUILD)/l4lb
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SBINDIR="$(SBINDIR)" UNITDIR="$(UNITDIR)" \
	  MANDIR="$(MANDIR)" DOCDIR="$(DOCDIR)" scripts/install.sh $(BUILD)/l4lb

# The Debian package, built with debhelper (dh, compat 13) in build/deb/l4lb-VERSION/: a copy
# of the sources with scripts/debian/ as debian/ (so the repo needs no top-level debian/).
# Objects stay in that tree between runs (-nc), so a second `make deb` only relinks what
# changed. scripts/debian/changelog's version must be $(VERSION) (`l4lb --version`).
DEB_TREE := build/deb/l4lb-$(VERSION)
DEB_SRC  := Makefile README.md conf docs include scripts src systemd test/testd test/unit
deb:
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || \
	  { echo "make deb: needs debhelper and dpkg-dev: scripts/install-deps.sh --package" >&2; exit 1; }
	@v=$$(dpkg-parsechangelog -l scripts/debian/changelog -S Version); [ "$$v" = "$(VERSION)" ] || \
	  { echo "make deb: scripts/debian/changelog is at $$v, the Makefile at $(VERSION): add an entry for $(VERSION) at the top of scripts/debian/changelog (dch from devscripts does it)" >&2; exit 1; }
	@mkdir -p $(DEB_TREE)
	cd $(DEB_TREE) && rm -rf $(DEB_SRC) debian
	cp -a --parents $(DEB_SRC) $(DEB_TREE)/
	cp -a scripts/debian $(DEB_TREE)/debian
	+cd $(DEB_TREE) && DEB_BUILD_OPTIONS="parallel=$$(nproc) $$DEB_BUILD_OPTIONS" \
	  dpkg-buildpackage -b -nc -us -uc
	@arch=$$(dpkg-architecture -qDEB_HOST_ARCH); \
	  cp build/deb/l4lb_$(VERSION)_$$arch.deb build/ && echo "built build/l4lb_$(VERSION)_$$arch.deb"

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(TESTD_OBJ:.o=.d) $(BUILD)/obj/src/main.d $(BUILD)/obj/bench/select_bench.d
