use std::collections::VecDeque;
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use bytes::BytesMut;
use nix::sys::socket::{
    recvmsg, socketpair as raw_socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag,
    SockType,
};
use tokio::io::unix::AsyncFd;

/// A connected pair of Unix stream sockets: the parent's end, and the end a
/// child inherits (see [`crate::Spec::inherit`]). Both are close-on-exec, so no
/// other child spawned meanwhile can inherit them by accident.
pub fn socketpair() -> io::Result<(UnixStream, OwnedFd)> {
    let (parent, child) = raw_socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((UnixStream::from(parent), child))
}

/// How many descriptors one read can bring; a worker passes at most one per frame.
const MAX_FDS_PER_READ: usize = 8;

/// The parent's end of a worker socket: an async byte stream that also
/// receives file descriptors passed with SCM_RIGHTS (wsgi.file_wrapper).
///
/// Reads and writes may happen from different tasks at once through `&self`.
#[derive(Debug)]
pub struct FdSocket {
    inner: AsyncFd<UnixStream>,
}

impl FdSocket {
    /// Wraps the parent's end; must be called inside a tokio runtime.
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        // SAFETY: the stream is moved into the AsyncFd and owned by it until it is
        // dropped, so its descriptor stays open and the same for the whole lifetime.
        let inner = unsafe { AsyncFd::register(stream) }.map_err(|e| e.into_parts().1)?;
        Ok(FdSocket { inner })
    }

    /// Reads what is available into `buf` (growing it) and appends any passed
    /// descriptors to `fds`, in order. Returns 0 at end of stream.
    pub async fn recv(&self, buf: &mut BytesMut, fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        loop {
            let mut guard = self.inner.readable().await?;
            match guard.try_io(|inner| recv_once(inner.get_ref(), buf, fds)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes as much of `parts` as the socket takes right now, in one system
    /// call, without waiting; returns how many bytes went out.
    pub fn try_send_vectored(&self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        match nix::sys::socket::sendmsg::<()>(
            self.inner.get_ref().as_raw_fd(),
            parts,
            &[],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => Ok(n),
            Err(nix::errno::Errno::EAGAIN) => Ok(0),
            Err(error) => Err(error.into()),
        }
    }

    /// Writes all of `bytes`.
    pub async fn send_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut guard = self.inner.writable().await?;
            match guard.try_io(|inner| {
                nix::sys::socket::send(inner.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL)
                    .map_err(io::Error::from)
            }) {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(error)) => return Err(error),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

fn recv_once(
    stream: &UnixStream,
    buf: &mut BytesMut,
    fds: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: recvmsg only writes into the buffer; we advance `len` by exactly
    // the number of bytes the kernel reports as written.
    let spare: &mut [u8] =
        unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), spare.len()) };
    let mut iov = [IoSliceMut::new(spare)];
    let mut control = nix::cmsg_space!([std::os::fd::RawFd; MAX_FDS_PER_READ]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let n = msg.bytes;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for raw in received {
                // SAFETY: the kernel just created this descriptor for us; nobody else owns it.
                fds.push_back(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    // SAFETY: the kernel initialised `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::{Read, Seek, Write};

    #[tokio::test]
    async fn bytes_and_a_passed_descriptor_arrive_in_order() {
        let (parent, child) = socketpair().unwrap();
        let socket = FdSocket::new(parent).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"file contents").unwrap();
        file.rewind().unwrap();
        let child = UnixStream::from(child);
        let fds = [file.as_raw_fd()];
        sendmsg::<()>(
            child.as_raw_fd(),
            &[IoSlice::new(b"frame")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(file);
        let mut buf = BytesMut::new();
        let mut got = VecDeque::new();
        let n = socket.recv(&mut buf, &mut got).await.unwrap();
        assert_eq!(&buf[..n], b"frame");
        assert_eq!(got.len(), 1);
        let mut passed = std::fs::File::from(got.pop_front().unwrap());
        let mut text = String::new();
        passed.read_to_string(&mut text).unwrap();
        assert_eq!(text, "file contents");
    }

    #[tokio::test]
    async fn send_all_writes_more_than_the_socket_buffer() {
        let (parent, child) = socketpair().unwrap();
        let socket = FdSocket::new(parent).unwrap();
        let mut child = UnixStream::from(child);
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            child.read_to_end(&mut all).unwrap();
            all.len()
        });
        socket.send_all(&vec![7u8; 4 << 20]).await.unwrap();
        drop(socket);
        assert_eq!(reader.join().unwrap(), 4 << 20);
    }

    #[tokio::test]
    async fn end_of_stream_reads_zero() {
        let (parent, child) = socketpair().unwrap();
        let socket = FdSocket::new(parent).unwrap();
        drop(child);
        let mut buf = BytesMut::new();
        assert_eq!(
            socket.recv(&mut buf, &mut VecDeque::new()).await.unwrap(),
            0
        );
    }
}
