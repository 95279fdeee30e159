//! A disk that loses power: a FUSE layer over a directory that keeps every
//! file's unsynced writes in memory and forgets them when the power is cut
//! (the idea of Jepsen's LazyFS). SIGKILL leaves the kernel's page cache
//! intact, so a test that only kills processes cannot catch a missing
//! fsync; on this layer, a write reaches the directory underneath only when
//! its file is fsynced (or fdatasynced), and [`PowerSwitch::cut`] throws
//! away everything that was not.
//!
//! The model, and what it leaves out:
//! - **File data** is what it forgets: writes and truncations since the
//!   file's last fsync.
//! - **Names** (create, mkdir, rename, unlink, rmdir) are forgotten too
//!   until their directory is fsynced, as POSIX has it: a cut removes a
//!   name created since, puts back one removed (kept aside meanwhile, in a
//!   directory beside the one underneath), and undoes a rename (the name
//!   it replaced comes back). A rename is durable with its target's
//!   directory. A new directory whose own name is not durable takes its
//!   whole content with it. So a file written, synced and renamed into
//!   place is lost unless its directory is synced after.
//! - The kernel caches nothing: files are opened with direct I/O and
//!   attributes and names are never cached, so what a process reads after a
//!   cut is what this layer holds.
//! - One request at a time (fuser's session loop): slow, and enough for
//!   tests.
//!
//! [`mount`] mounts it (as root, through `/dev/fuse`) and returns the
//! switch; dropping the [`Mounted`] unmounts it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use parking_lot::Mutex;

/// Attributes and names are never cached by the kernel (see the module
/// documentation).
const NO_CACHE: Duration = Duration::ZERO;
const ROOT: u64 = fuser::FUSE_ROOT_ID;

/// A file's writes since its last fsync: its whole content as the
/// processes see it, and the first byte that differs from the directory
/// underneath.
struct Unsynced {
    content: Vec<u8>,
    changed_from: u64,
}

/// A change of names not yet durable: its directory was not fsynced since.
enum NameChange {
    /// `path` was created (a file or a directory).
    Created { path: PathBuf },
    /// `path` was removed; what it named waits at `kept` (absolute).
    Removed { path: PathBuf, kept: PathBuf },
    /// `from` was renamed `to`; what `to` named before waits at `replaced`.
    Renamed {
        from: PathBuf,
        to: PathBuf,
        replaced: Option<PathBuf>,
    },
}

impl NameChange {
    /// Whether the change touches anything under `within`.
    fn touches(&self, within: &Path) -> bool {
        match self {
            NameChange::Created { path } | NameChange::Removed { path, .. } => {
                path.starts_with(within)
            }
            NameChange::Renamed { from, to, .. } => {
                from.starts_with(within) || to.starts_with(within)
            }
        }
    }

    /// Undoes it underneath `under` (a cut).
    fn undo(&self, under: &Path) -> io::Result<()> {
        match self {
            NameChange::Created { path } => remove_any(&under.join(path)),
            NameChange::Removed { path, kept } => fs::rename(kept, under.join(path)),
            NameChange::Renamed { from, to, replaced } => {
                fs::rename(under.join(to), under.join(from))?;
                match replaced {
                    Some(kept) => fs::rename(kept, under.join(to)),
                    None => Ok(()),
                }
            }
        }
    }

    /// What it keeps aside, to be deleted once it is durable.
    fn kept(&self) -> Option<&Path> {
        match self {
            NameChange::Removed { kept, .. } => Some(kept),
            NameChange::Renamed { replaced, .. } => replaced.as_deref(),
            NameChange::Created { .. } => None,
        }
    }
}

/// Removes a file or a directory with its content; gone already is fine
/// (a later change, made durable, may have moved it).
fn remove_any(path: &Path) -> io::Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(error) => Err(error),
    };
    match removed {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A name change waiting for an fsync of `dir` (relative).
struct PendingName {
    dir: PathBuf,
    change: NameChange,
}

/// What a cut forgot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Files that lost unsynced writes.
    pub files: usize,
    /// Name changes undone (their directory was not synced).
    pub names: usize,
}

/// The layer's state, shared by the filesystem and its switch.
#[derive(Default)]
struct State {
    /// The directory underneath, and beside it where removed names wait.
    under: PathBuf,
    kept_aside: PathBuf,
    kept_count: u64,
    /// Name changes not yet durable, oldest first.
    names: Vec<PendingName>,
    /// Counts cuts: the filesystem drops its open files underneath when it
    /// changes (a cut may have put other files under their names).
    generation: u64,
    /// Every inode handed to the kernel, by its path under the directory.
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_inode: u64,
    unsynced: HashMap<u64, Unsynced>,
    /// Counts, for tests of the layer itself.
    syncs: u64,
    cuts: u64,
}

/// Cuts the power of the disk it came with (see [`mount`]).
#[derive(Clone)]
pub struct PowerSwitch {
    state: Arc<Mutex<State>>,
}

impl PowerSwitch {
    /// Cuts the power under `within` (a path relative to the mount's root;
    /// empty for the whole disk): every file there forgets what was written
    /// since its last fsync, and every name change there not made durable
    /// by an fsync of its directory is undone, newest first. The processes
    /// using those files must be dead already (a power cut kills them too),
    /// or they would see the loss.
    pub fn cut(&self, within: &Path) -> io::Result<Forgotten> {
        let mut state = self.state.lock();
        let before = state.unsynced.len();
        let State {
            paths, unsynced, ..
        } = &mut *state;
        unsynced.retain(|inode, _| !paths.get(inode).is_some_and(|p| p.starts_with(within)));
        let files = before - state.unsynced.len();
        let (undone, kept): (Vec<PendingName>, Vec<PendingName>) = std::mem::take(&mut state.names)
            .into_iter()
            .partition(|pending| pending.change.touches(within));
        state.names = kept;
        for pending in undone.iter().rev() {
            pending.change.undo(&state.under)?;
        }
        // Names under `within` may now name other files: numbered afresh.
        let stale: Vec<PathBuf> = state
            .inodes
            .keys()
            .filter(|path| path.starts_with(within) && path.as_path() != within)
            .cloned()
            .collect();
        for path in stale {
            if let Some(inode) = state.inodes.remove(&path) {
                state.paths.remove(&inode);
            }
        }
        state.cuts += 1;
        state.generation += 1;
        Ok(Forgotten {
            files,
            names: undone.len(),
        })
    }

    /// Files holding writes not yet synced.
    pub fn unsynced_files(&self) -> usize {
        self.state.lock().unsynced.len()
    }

    /// Fsyncs of files seen so far.
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }
}

/// A mounted layer: unmounted when dropped.
pub struct Mounted {
    _session: fuser::BackgroundSession,
    /// The mount point.
    pub path: PathBuf,
    /// Its power switch.
    pub power: PowerSwitch,
}

/// A fresh forgetful disk in directory `dir`: the files underneath in
/// `dir/under`, mounted at `dir/disk` (the tests' usual layout).
pub fn mount_in(dir: &Path) -> io::Result<Mounted> {
    let (under, at) = (dir.join("under"), dir.join("disk"));
    fs::create_dir_all(&under)?;
    fs::create_dir_all(&at)?;
    mount(&under, &at)
}

/// Mounts the layer over `under` at `at` (both directories) and returns
/// once it serves.
pub fn mount(under: &Path, at: &Path) -> io::Result<Mounted> {
    let mut aside = under.as_os_str().to_owned();
    aside.push(".removed");
    let kept_aside = PathBuf::from(aside);
    fs::create_dir_all(&kept_aside)?;
    let state = Arc::new(Mutex::new(State {
        under: under.to_path_buf(),
        kept_aside,
        next_inode: ROOT + 1,
        ..State::default()
    }));
    state.lock().paths.insert(ROOT, PathBuf::new());
    state.lock().inodes.insert(PathBuf::new(), ROOT);
    let layer = Forgetful {
        under: under.to_path_buf(),
        state: state.clone(),
        files: HashMap::new(),
        generation: 0,
    };
    let options = [
        MountOption::FSName("ingressoja-powerloss".into()),
        MountOption::DefaultPermissions,
    ];
    let session = fuser::spawn_mount2(layer, at, &options)?;
    Ok(Mounted {
        _session: session,
        path: at.to_path_buf(),
        power: PowerSwitch { state },
    })
}

/// The filesystem (see the module documentation).
struct Forgetful {
    under: PathBuf,
    state: Arc<Mutex<State>>,
    /// Open files underneath, by inode (reused by every handle), as of
    /// the state's `generation`.
    files: HashMap<u64, File>,
    generation: u64,
}

/// Answers a request that returns nothing.
fn answer(result: Result<(), i32>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(code) => reply.error(code),
    }
}

fn errno(error: &io::Error) -> i32 {
    error.raw_os_error().unwrap_or(libc::EIO)
}

fn system_time(seconds: i64, nanos: i64) -> SystemTime {
    let since = Duration::new(
        u64::try_from(seconds).unwrap_or(0),
        u32::try_from(nanos).unwrap_or(0),
    );
    UNIX_EPOCH + since
}

impl Forgetful {
    fn path_of(&self, inode: u64) -> Result<PathBuf, i32> {
        self.state
            .lock()
            .paths
            .get(&inode)
            .cloned()
            .ok_or(libc::ENOENT)
    }

    fn full(&self, relative: &Path) -> PathBuf {
        self.under.join(relative)
    }

    /// The inode for `relative`, numbered on first sight.
    fn inode_of(&self, relative: &Path) -> u64 {
        let mut state = self.state.lock();
        if let Some(&inode) = state.inodes.get(relative) {
            return inode;
        }
        let inode = state.next_inode;
        state.next_inode += 1;
        state.paths.insert(inode, relative.to_path_buf());
        state.inodes.insert(relative.to_path_buf(), inode);
        inode
    }

    fn attr(&self, inode: u64, relative: &Path) -> Result<FileAttr, i32> {
        let meta = fs::symlink_metadata(self.full(relative)).map_err(|e| errno(&e))?;
        let kind = if meta.is_dir() {
            FileType::Directory
        } else if meta.file_type().is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        };
        let size = match self.state.lock().unsynced.get(&inode) {
            Some(unsynced) => unsynced.content.len() as u64,
            None => meta.len(),
        };
        Ok(FileAttr {
            ino: inode,
            size,
            blocks: size.div_ceil(512),
            atime: system_time(meta.atime(), meta.atime_nsec()),
            mtime: system_time(meta.mtime(), meta.mtime_nsec()),
            ctime: system_time(meta.ctime(), meta.ctime_nsec()),
            crtime: system_time(meta.ctime(), meta.ctime_nsec()),
            kind,
            perm: u16::try_from(meta.permissions().mode() & 0o7777).unwrap_or(0o600),
            nlink: u32::try_from(meta.nlink()).unwrap_or(1),
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn entry(&self, parent: u64, name: &OsStr) -> Result<(u64, FileAttr), i32> {
        let relative = self.path_of(parent)?.join(name);
        fs::symlink_metadata(self.full(&relative)).map_err(|e| errno(&e))?;
        let inode = self.inode_of(&relative);
        Ok((inode, self.attr(inode, &relative)?))
    }

    /// The file underneath, opened once for reading and writing.
    fn file(&mut self, inode: u64) -> Result<&File, i32> {
        let generation = self.state.lock().generation;
        if generation != self.generation {
            self.files.clear();
            self.generation = generation;
        }
        if !self.files.contains_key(&inode) {
            let path = self.full(&self.path_of(inode)?);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| errno(&e))?;
            self.files.insert(inode, file);
        }
        self.files.get(&inode).ok_or(libc::EIO)
    }

    /// The file's content, held in memory from its first unsynced change.
    fn unsynced(&mut self, inode: u64) -> Result<(), i32> {
        if self.state.lock().unsynced.contains_key(&inode) {
            return Ok(());
        }
        let path = self.full(&self.path_of(inode)?);
        let content = fs::read(path).map_err(|e| errno(&e))?;
        let changed_from = content.len() as u64;
        self.state.lock().unsynced.insert(
            inode,
            Unsynced {
                content,
                changed_from,
            },
        );
        Ok(())
    }

    fn write_at(&mut self, inode: u64, offset: u64, data: &[u8]) -> Result<(), i32> {
        self.unsynced(inode)?;
        let mut state = self.state.lock();
        let unsynced = state.unsynced.get_mut(&inode).ok_or(libc::EIO)?;
        let start = usize::try_from(offset).map_err(|_| libc::EFBIG)?;
        let end = start + data.len();
        if unsynced.content.len() < end {
            unsynced.content.resize(end, 0);
        }
        unsynced.content[start..end].copy_from_slice(data);
        unsynced.changed_from = unsynced.changed_from.min(offset);
        Ok(())
    }

    fn truncate(&mut self, inode: u64, size: u64) -> Result<(), i32> {
        self.unsynced(inode)?;
        let mut state = self.state.lock();
        let unsynced = state.unsynced.get_mut(&inode).ok_or(libc::EIO)?;
        unsynced
            .content
            .resize(usize::try_from(size).map_err(|_| libc::EFBIG)?, 0);
        unsynced.changed_from = unsynced.changed_from.min(size);
        Ok(())
    }

    fn read_at(&mut self, inode: u64, offset: u64, size: usize) -> Result<Vec<u8>, i32> {
        if let Some(unsynced) = self.state.lock().unsynced.get(&inode) {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(unsynced.content.len());
            let end = start.saturating_add(size).min(unsynced.content.len());
            return Ok(unsynced.content[start..end].to_vec());
        }
        let file = self.file(inode)?;
        let mut buffer = vec![0; size];
        let mut read = 0;
        while read < size {
            match file.read_at(&mut buffer[read..], offset + read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(errno(&error)),
            }
        }
        buffer.truncate(read);
        Ok(buffer)
    }

    /// Writes the file's unsynced changes underneath and syncs them: from
    /// now on they survive a cut.
    fn sync(&mut self, inode: u64) -> Result<(), i32> {
        let taken = self.state.lock().unsynced.remove(&inode);
        if let Some(unsynced) = taken {
            let file = self.file(inode)?;
            let from = usize::try_from(unsynced.changed_from)
                .unwrap_or(usize::MAX)
                .min(unsynced.content.len());
            let written = file
                .write_all_at(&unsynced.content[from..], from as u64)
                .and_then(|()| file.set_len(unsynced.content.len() as u64))
                .and_then(|()| file.sync_data());
            if let Err(error) = written {
                // Still unsynced: keep it, and say the sync failed.
                self.state.lock().unsynced.insert(inode, unsynced);
                return Err(errno(&error));
            }
        }
        self.state.lock().syncs += 1;
        Ok(())
    }

    /// A name change in directory `dir`, durable once it is fsynced.
    fn changed(&self, dir: PathBuf, change: NameChange) {
        self.state.lock().names.push(PendingName { dir, change });
    }

    /// Moves `relative` aside (where a cut can bring it back from), if it
    /// exists; returns where it went.
    fn put_aside(&self, relative: &Path) -> Result<Option<PathBuf>, i32> {
        let full = self.full(relative);
        if fs::symlink_metadata(&full).is_err() {
            return Ok(None);
        }
        let kept = {
            let mut state = self.state.lock();
            state.kept_count += 1;
            state.kept_aside.join(state.kept_count.to_string())
        };
        fs::rename(&full, &kept).map_err(|e| errno(&e))?;
        Ok(Some(kept))
    }

    /// Removes `name` in `parent` (a file, or an empty directory: `is_dir`
    /// says which is asked for): moved aside until the directory is synced.
    fn remove(&mut self, parent: u64, name: &OsStr, is_dir: bool) -> Result<(), i32> {
        let dir = self.path_of(parent)?;
        let relative = dir.join(name);
        let meta = fs::symlink_metadata(self.full(&relative)).map_err(|e| errno(&e))?;
        if is_dir && !meta.is_dir() {
            return Err(libc::ENOTDIR);
        }
        if !is_dir && meta.is_dir() {
            return Err(libc::EISDIR);
        }
        if is_dir
            && fs::read_dir(self.full(&relative))
                .map_err(|e| errno(&e))?
                .next()
                .is_some()
        {
            return Err(libc::ENOTEMPTY);
        }
        let kept = self.put_aside(&relative)?.ok_or(libc::ENOENT)?;
        self.forget_path(&relative);
        self.changed(
            dir,
            NameChange::Removed {
                path: relative,
                kept,
            },
        );
        Ok(())
    }

    /// Makes the name changes in `inode`'s directory durable.
    fn sync_dir(&mut self, inode: u64) -> Result<(), i32> {
        let dir = self.path_of(inode)?;
        let durable: Vec<PendingName> = {
            let mut state = self.state.lock();
            let (durable, pending) = std::mem::take(&mut state.names)
                .into_iter()
                .partition(|p| p.dir == dir);
            state.names = pending;
            durable
        };
        for pending in durable {
            if let Some(kept) = pending.change.kept() {
                remove_any(kept).map_err(|e| errno(&e))?;
            }
        }
        Ok(())
    }

    fn forget_path(&mut self, relative: &Path) {
        let mut state = self.state.lock();
        if let Some(inode) = state.inodes.remove(relative) {
            state.paths.remove(&inode);
            state.unsynced.remove(&inode);
            self.files.remove(&inode);
        }
    }
}

impl Filesystem for Forgetful {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.entry(parent, name) {
            Ok((_, attr)) => reply.entry(&NO_CACHE, &attr, 0),
            Err(code) => reply.error(code),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.path_of(ino).and_then(|p| self.attr(ino, &p)) {
            Ok(attr) => reply.attr(&NO_CACHE, &attr),
            Err(code) => reply.error(code),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let done = self.path_of(ino).and_then(|relative| {
            if let Some(mode) = mode {
                fs::set_permissions(self.full(&relative), fs::Permissions::from_mode(mode))
                    .map_err(|e| errno(&e))?;
            }
            if let Some(size) = size {
                self.truncate(ino, size)?;
            }
            self.attr(ino, &relative)
        });
        match done {
            Ok(attr) => reply.attr(&NO_CACHE, &attr),
            Err(code) => reply.error(code),
        }
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let made = self.path_of(parent).and_then(|p| {
            let path = self.full(&p.join(name));
            fs::create_dir(&path).map_err(|e| errno(&e))?;
            self.changed(p.clone(), NameChange::Created { path: p.join(name) });
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| errno(&e))?;
            self.entry(parent, name)
        });
        match made {
            Ok((_, attr)) => reply.entry(&NO_CACHE, &attr, 0),
            Err(code) => reply.error(code),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        answer(self.remove(parent, name, false), reply);
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        answer(self.remove(parent, name, true), reply);
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        _flags: u32,
        reply: ReplyEmpty,
    ) {
        let renamed = self.path_of(parent).and_then(|from_dir| {
            let from = from_dir.join(name);
            let to_dir = self.path_of(newparent)?;
            let to = to_dir.join(newname);
            let moved = fs::symlink_metadata(self.full(&from)).map_err(|e| errno(&e))?;
            if from == to {
                return Ok(()); // renaming a name onto itself does nothing
            }
            // What rename(2) refuses, refused before anything is moved aside.
            if let Ok(target) = fs::symlink_metadata(self.full(&to)) {
                match (moved.is_dir(), target.is_dir()) {
                    (true, false) => return Err(libc::ENOTDIR),
                    (false, true) => return Err(libc::EISDIR),
                    (true, true)
                        if fs::read_dir(self.full(&to))
                            .map_err(|e| errno(&e))?
                            .next()
                            .is_some() =>
                    {
                        return Err(libc::ENOTEMPTY);
                    }
                    _ => {}
                }
            }
            // What `to` named waits aside, for a cut to bring back.
            let replaced = self.put_aside(&to)?;
            if let Err(error) = fs::rename(self.full(&from), self.full(&to)) {
                if let Some(kept) = &replaced {
                    let _ = fs::rename(kept, self.full(&to));
                }
                return Err(errno(&error));
            }
            self.changed(
                to_dir,
                NameChange::Renamed {
                    from: from.clone(),
                    to: to.clone(),
                    replaced,
                },
            );
            // Whatever was at `to` is gone; `from` (and anything under it)
            // is known by its new name, its unsynced writes with it.
            self.forget_path(&to);
            let mut state = self.state.lock();
            let moved: Vec<(u64, PathBuf)> = state
                .paths
                .iter()
                .filter_map(|(&inode, path)| {
                    let rest = path.strip_prefix(&from).ok()?;
                    // (Joining an empty rest would add a trailing slash.)
                    let moved = if rest.as_os_str().is_empty() {
                        to.clone()
                    } else {
                        to.join(rest)
                    };
                    Some((inode, moved))
                })
                .collect();
            for (inode, path) in moved {
                if let Some(old) = state.paths.insert(inode, path.clone()) {
                    state.inodes.remove(&old);
                }
                state.inodes.insert(path, inode);
            }
            Ok(())
        });
        answer(renamed, reply);
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.file(ino) {
            Ok(_) => reply.opened(0, fuser::consts::FOPEN_DIRECT_IO),
            Err(code) => reply.error(code),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let created = self.path_of(parent).and_then(|p| {
            let path = self.full(&p.join(name));
            let new = fs::symlink_metadata(&path).is_err();
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(flags & libc::O_TRUNC != 0)
                .custom_flags(flags & libc::O_EXCL)
                .mode(mode)
                .open(&path)
                .map_err(|e| errno(&e))?;
            if new {
                self.changed(p.clone(), NameChange::Created { path: p.join(name) });
            }
            self.entry(parent, name)
        });
        match created {
            Ok((_, attr)) => reply.created(&NO_CACHE, &attr, 0, 0, fuser::consts::FOPEN_DIRECT_IO),
            Err(code) => reply.error(code),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let offset = u64::try_from(offset).unwrap_or(0);
        match self.read_at(ino, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(code) => reply.error(code),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let offset = u64::try_from(offset).unwrap_or(0);
        match self.write_at(ino, offset, data) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(code) => reply.error(code),
        }
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        answer(self.sync(ino), reply);
    }

    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        answer(self.sync_dir(ino), reply);
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _offset: i64,
        _length: i64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        // Reserving space changes no content (RocksDB asks, keeping the size).
        reply.ok();
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.path_of(ino).and_then(|relative| {
            let mut entries = vec![
                (ino, FileType::Directory, ".".into()),
                (ino, FileType::Directory, "..".into()),
            ];
            for entry in fs::read_dir(self.full(&relative)).map_err(|e| errno(&e))? {
                let entry = entry.map_err(|e| errno(&e))?;
                let kind = match entry.file_type() {
                    Ok(t) if t.is_dir() => FileType::Directory,
                    Ok(t) if t.is_symlink() => FileType::Symlink,
                    _ => FileType::RegularFile,
                };
                let inode = self.inode_of(&relative.join(entry.file_name()));
                entries.push((inode, kind, entry.file_name()));
            }
            Ok(entries)
        });
        match listed {
            Ok(entries) => {
                let skip = usize::try_from(offset).unwrap_or(0);
                for (index, (inode, kind, name)) in entries.into_iter().enumerate().skip(skip) {
                    let next = i64::try_from(index + 1).unwrap_or(i64::MAX);
                    if reply.add(inode, next, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(code) => reply.error(code),
        }
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;

    use super::*;

    /// Mounts a fresh layer: (its directories, the mount).
    fn fresh() -> (tempfile::TempDir, tempfile::TempDir, Mounted) {
        let under = tempfile::tempdir().unwrap();
        let at = tempfile::tempdir().unwrap();
        let mounted = mount(under.path(), at.path()).unwrap();
        (under, at, mounted)
    }

    /// Fsyncs directory `dir`: its name changes are durable from now on.
    fn sync_dir(dir: &Path) {
        File::open(dir).unwrap().sync_all().unwrap();
    }

    fn cut(disk: &Mounted, within: &str) -> Forgotten {
        disk.power.cut(Path::new(within)).unwrap()
    }

    #[test]
    fn a_cut_forgets_unsynced_writes_and_keeps_synced_ones() {
        let (under, _at, disk) = fresh();
        let synced = disk.path.join("synced");
        let unsynced = disk.path.join("unsynced");
        {
            let mut file = File::create(&synced).unwrap();
            file.write_all(b"kept").unwrap();
            file.sync_all().unwrap();
            file.write_all(b" and lost").unwrap();
            let mut other = File::create(&unsynced).unwrap();
            other.write_all(b"lost").unwrap();
        }
        sync_dir(&disk.path);
        // Before the cut every process sees every write...
        assert_eq!(fs::read(&synced).unwrap(), b"kept and lost");
        assert_eq!(fs::read(&unsynced).unwrap(), b"lost");
        // ...and nothing unsynced is underneath.
        assert_eq!(fs::read(under.path().join("synced")).unwrap(), b"kept");
        assert_eq!(disk.power.unsynced_files(), 2);

        assert_eq!(cut(&disk, "").files, 2);
        assert_eq!(fs::read(&synced).unwrap(), b"kept");
        assert_eq!(fs::read(&unsynced).unwrap(), b"", "created, never synced");
    }

    #[test]
    fn a_cut_under_one_directory_spares_the_others() {
        let (_under, _at, disk) = fresh();
        for node in ["one", "two"] {
            fs::create_dir(disk.path.join(node)).unwrap();
            fs::write(disk.path.join(node).join("log"), b"unsynced").unwrap();
            sync_dir(&disk.path.join(node));
        }
        sync_dir(&disk.path);
        assert_eq!(cut(&disk, "one").files, 1);
        assert_eq!(fs::read(disk.path.join("one/log")).unwrap(), b"");
        assert_eq!(fs::read(disk.path.join("two/log")).unwrap(), b"unsynced");
    }

    #[test]
    fn a_renamed_file_keeps_its_unsynced_writes_under_its_new_name() {
        let (_under, _at, disk) = fresh();
        let temporary = disk.path.join(".snapshot.tmp");
        let mut file = File::create(&temporary).unwrap();
        file.write_all(b"state").unwrap();
        fs::rename(&temporary, disk.path.join("snapshot")).unwrap();
        sync_dir(&disk.path);
        assert_eq!(fs::read(disk.path.join("snapshot")).unwrap(), b"state");
        // Renamed before its data was synced: a cut leaves an empty file.
        drop(file); // the cut kills its process
        cut(&disk, "");
        assert_eq!(fs::read(disk.path.join("snapshot")).unwrap(), b"");
        let file = OpenOptions::new()
            .write(true)
            .open(disk.path.join("snapshot"))
            .unwrap();
        file.write_all_at(b"again", 0).unwrap();
        file.sync_data().unwrap();
        drop(file);
        cut(&disk, "");
        assert_eq!(fs::read(disk.path.join("snapshot")).unwrap(), b"again");
    }

    #[test]
    fn truncation_is_forgotten_until_synced() {
        let (_under, _at, disk) = fresh();
        let path = disk.path.join("file");
        let file = File::create(&path).unwrap();
        file.write_all_at(b"0123456789", 0).unwrap();
        file.sync_all().unwrap();
        sync_dir(&disk.path);
        file.set_len(3).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"012");
        cut(&disk, "");
        assert_eq!(fs::read(&path).unwrap(), b"0123456789");
    }

    #[test]
    fn a_new_name_is_forgotten_until_its_directory_is_synced() {
        let (under, _at, disk) = fresh();
        let path = disk.path.join("file");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"synced data").unwrap();
        file.sync_all().unwrap();
        // The data is durable, its name is not.
        assert_eq!(cut(&disk, "").names, 1);
        assert!(!path.exists(), "the name outlived the cut");
        assert!(!under.path().join("file").exists());

        fs::write(&path, b"again").unwrap();
        File::open(&path).unwrap().sync_all().unwrap();
        sync_dir(&disk.path);
        assert_eq!(cut(&disk, ""), Forgotten::default());
        assert_eq!(fs::read(&path).unwrap(), b"again");
    }

    #[test]
    fn a_rename_into_place_is_undone_until_its_directory_is_synced() {
        let (_under, _at, disk) = fresh();
        let (old, temporary) = (disk.path.join("snapshot"), disk.path.join(".snapshot.tmp"));
        fs::write(&old, b"old").unwrap();
        File::open(&old).unwrap().sync_all().unwrap();
        sync_dir(&disk.path);
        // The snapshot's steps without the last: write, sync, rename.
        fs::write(&temporary, b"new").unwrap();
        File::open(&temporary).unwrap().sync_all().unwrap();
        fs::rename(&temporary, &old).unwrap();
        assert_eq!(fs::read(&old).unwrap(), b"new");
        assert_eq!(cut(&disk, "").names, 2, "the create and the rename");
        assert_eq!(fs::read(&old).unwrap(), b"old", "the replaced file is back");
        assert!(!temporary.exists());
        // With the last step, the rename stays.
        fs::write(&temporary, b"new").unwrap();
        File::open(&temporary).unwrap().sync_all().unwrap();
        fs::rename(&temporary, &old).unwrap();
        sync_dir(&disk.path);
        assert_eq!(cut(&disk, "").names, 0);
        assert_eq!(fs::read(&old).unwrap(), b"new");
    }

    #[test]
    fn a_rename_refuses_what_rename_refuses_and_onto_itself_does_nothing() {
        let (_under, _at, disk) = fresh();
        let (file, dir) = (disk.path.join("file"), disk.path.join("dir"));
        fs::write(&file, b"kept").unwrap();
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("inside"), b"x").unwrap();
        fs::rename(&file, &file).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"kept");
        let other = disk.path.join("other");
        fs::create_dir(&other).unwrap();
        assert!(
            fs::rename(&other, &dir).is_err(),
            "onto a non-empty directory"
        );
        assert!(fs::rename(&file, &dir).is_err(), "a file onto a directory");
        assert_eq!(fs::read(dir.join("inside")).unwrap(), b"x");
        assert_eq!(fs::read(&file).unwrap(), b"kept");
    }

    #[test]
    fn a_removed_file_comes_back_until_its_directory_is_synced() {
        let (_under, _at, disk) = fresh();
        let path = disk.path.join("file");
        fs::write(&path, b"durable").unwrap();
        File::open(&path).unwrap().sync_all().unwrap();
        sync_dir(&disk.path);
        fs::remove_file(&path).unwrap();
        assert!(!path.exists());
        cut(&disk, "");
        assert_eq!(fs::read(&path).unwrap(), b"durable");
        fs::remove_file(&path).unwrap();
        sync_dir(&disk.path);
        cut(&disk, "");
        assert!(!path.exists());
    }

    #[test]
    fn a_new_directory_takes_its_content_with_it_until_its_parent_is_synced() {
        let (_under, _at, disk) = fresh();
        let dir = disk.path.join("data");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("file"), b"synced").unwrap();
        File::open(dir.join("file")).unwrap().sync_all().unwrap();
        sync_dir(&dir);
        cut(&disk, "");
        assert!(!dir.exists(), "the directory's own name was never synced");
        fs::create_dir(&dir).unwrap();
        sync_dir(&disk.path);
        fs::write(dir.join("file"), b"synced").unwrap();
        File::open(dir.join("file")).unwrap().sync_all().unwrap();
        sync_dir(&dir);
        cut(&disk, "");
        assert_eq!(fs::read(dir.join("file")).unwrap(), b"synced");
    }
}
