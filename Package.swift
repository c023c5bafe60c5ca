// swift-tools-version:6.0
import PackageDescription

// Webhooky has no SwiftPM package dependencies: the toolchain plus three Debian C libraries,
// each reached through one system library target and one Swift wrapper that owns its pointers.
let package = Package(
    name: "Webhooky",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "webhooky", targets: ["webhooky"]),
        .executable(name: "webhooky-drill", targets: ["webhooky-drill"]),
    ],
    targets: [
        // C libraries (Debian packages), one shim header each.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // Wrappers: the only code that touches C pointers.
        .target(name: "Postgres", dependencies: ["CLibPQ"]),
        .target(name: "HTTPClient", dependencies: ["CCurl", "ThreadNames"]),
        .target(name: "StandardWebhooks", dependencies: ["CCrypto"]),

        // The OS's name of a thread (`top -H`, `perf`), set from inside it.
        .target(name: "ThreadNames"),

        // Pure logic, no I/O.
        .target(name: "Templates"),
        .target(name: "Log"),
        .target(name: "Delivery", dependencies: ["Templates", "StandardWebhooks"]),

        // SQL: the numbered migrations in sql/ are embedded into the binary.
        .target(
            name: "Schema",
            dependencies: ["Postgres", "Log"],
            resources: [.embedInCode("sql")]
        ),

        // The worker: drivers that execute what the pure state machines decide.
        .target(
            name: "Worker",
            dependencies: ["Postgres", "HTTPClient", "Delivery", "Templates", "Schema", "Log", "ThreadNames"]
        ),

        // Throwaway PostgreSQL clusters and loopback HTTP receivers (demo, tests, benchmarks).
        .target(name: "LocalPostgres", dependencies: ["Postgres", "Log"]),
        .target(name: "LoopbackReceiver", dependencies: ["ThreadNames"]),
        .target(name: "Drill", dependencies: ["LocalPostgres", "LoopbackReceiver", "Postgres", "Schema"]),
        .executableTarget(name: "webhooky-drill", dependencies: ["Drill", "Log"]),
        .target(
            name: "Demo",
            dependencies: ["Worker", "Schema", "LocalPostgres", "LoopbackReceiver", "Postgres", "Log", "HTTPClient", "StandardWebhooks"]
        ),

        // The admin's and the DBA's commands (preview, tail, status, doctor): queries and
        // formatting, kept out of the executable so that tests can call them.
        .target(name: "Operations", dependencies: ["Postgres", "Schema", "Delivery", "Templates", "HTTPClient"]),

        // The command line: `webhooky run | migrate | demo | preview | tail | status | doctor`.
        .executableTarget(
            name: "webhooky",
            dependencies: ["Worker", "Schema", "Demo", "Postgres", "Log", "HTTPClient", "Delivery", "Operations"]
        ),

        .target(
            name: "TestSupport",
            dependencies: ["LocalPostgres", "LoopbackReceiver", "Postgres", "Schema", "Log", "Worker", "ThreadNames"],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "TemplatesTests", dependencies: ["Templates", "TestSupport"]),
        .testTarget(name: "ThreadNamesTests", dependencies: ["ThreadNames"]),
        .testTarget(name: "DeliveryTests", dependencies: ["Delivery", "Templates", "StandardWebhooks", "TestSupport"]),
        // LocalPostgres for ChildProcess, which runs openssl (a test CA, s_server) for the TLS tests.
        .testTarget(name: "HTTPClientTests", dependencies: ["HTTPClient", "LoopbackReceiver", "LocalPostgres"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport", "LocalPostgres"]),
        .testTarget(
            name: "WorkerTests",
            dependencies: ["Worker", "Schema", "Postgres", "HTTPClient", "TestSupport", "LoopbackReceiver", "StandardWebhooks", "Templates", "Delivery", "Log", "Drill"]
        ),
        .testTarget(
            name: "OperationsTests",
            dependencies: ["Operations", "Worker", "Schema", "Postgres", "TestSupport", "LoopbackReceiver", "StandardWebhooks", "Templates", "Delivery", "HTTPClient", "LocalPostgres"]
        ),
    ]
)

// Strictness is set once, for every target.
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(contentsOf: [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("InternalImportsByDefault"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ])
    target.swiftSettings = settings
}
