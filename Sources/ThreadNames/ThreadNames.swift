import Glibc

/// Names the calling thread as the OS shows it (`top -H`, `ps -L`, `perf`,
/// `/proc/<pid>/task/<tid>/comm`). Call it first thing inside the thread's body.
///
/// Not Foundation's `Thread.name`: on Linux it reaches the OS only when set after `start()` has
/// stored the new thread's handle, and a thread that runs before its parent gets there has its
/// name dropped without a word (set before `start()`, it never reaches the OS at all). The name
/// is written to `/proc/thread-self/comm`, what `pthread_setname_np` does (a GNU extension
/// Swift's Glibc module does not offer). Linux keeps at most 15 bytes of a name: a longer one
/// is cut to its first 15 bytes' whole characters. Naming is best effort: without `/proc`
/// the thread keeps its name.
public func nameThisThread(_ name: String) {
    var kept = ""
    for character in name {
        guard kept.utf8.count + character.utf8.count <= 15 else { break }
        kept.append(character)
    }
    let file = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard file >= 0 else { return }
    _ = kept.withCString { write(file, $0, strlen($0)) }
    close(file)
}
