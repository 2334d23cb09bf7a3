//! Self-test of the generated model: a few training steps on the embedded images, printing each
//! loss, then the error paths and a save / load round trip. The last line starts with
//! `mite-selftest: ok` (exit status 0) or `mite-selftest: FAIL` and the reason (exit status 1).
//!
//! Host: `cargo run --release --example selftest`.
//! Cortex-M4 under QEMU: `cargo run --release --target thumbv7em-none-eabihf --example selftest`
//! (the runner is in `.cargo/config.toml`; output through semihosting). On the device the model
//! lives in a `static` behind `critical_section::Mutex<RefCell<_>>`, as firmware would keep it.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

mod config;

use core::cell::RefCell;

use critical_section::Mutex;
use mite_model::{Error, Model, CLASSES, INPUT_LEN, OUTPUT_LEN, SAVE_BYTES};

/// The model, in `.bss`.
static MODEL: Mutex<RefCell<Model>> = Mutex::new(RefCell::new(Model::new()));

/// The images (`INPUT_LEN` int8 values each) and their labels.
static IMAGES: &[u8] = include_bytes!("../../data/selftest_images.bin");
static LABELS: &[u8] = include_bytes!("../../data/selftest_labels.bin");

/// Space for a save / load round trip (in `.bss`; empty when it would not fit the device).
static SAVED: Mutex<RefCell<[u8; config::SAVE_SPACE]>> =
    Mutex::new(RefCell::new([0; config::SAVE_SPACE]));

#[cfg(target_os = "none")]
macro_rules! say {
    ($($t:tt)*) => { cortex_m_semihosting::hprintln!($($t)*) };
}

#[cfg(not(target_os = "none"))]
macro_rules! say {
    ($($t:tt)*) => { std::println!($($t)*) };
}

/// Image `i` (in place, in flash) and its label.
fn sample(i: usize) -> Option<(&'static [i8; INPUT_LEN], i32)> {
    let image = mite_model::input_from_bytes(IMAGES.get(i * INPUT_LEN..(i + 1) * INPUT_LEN)?)?;
    let l = LABELS.get(4 * i..4 * i + 4)?;
    Some((image, i32::from_le_bytes([l[0], l[1], l[2], l[3]])))
}

/// A step timer.
trait Clock {
    /// The unit of [`Clock::since`].
    const UNIT: &'static str;
    /// A reading.
    fn now(&self) -> u64;
    /// Time since reading `t0` (which must be less than one counter period ago).
    fn since(&self, t0: u64) -> u64;
}

/// Runs the self-test; `Err` carries the reason of a failure.
fn run<C: Clock>(clock: &C) -> Result<(), &'static str> {
    let count = LABELS.len() / 4;
    if count == 0 || IMAGES.len() != count * INPUT_LEN {
        return Err("the embedded images do not match the model's input");
    }
    critical_section::with(|cs| {
        let mut model = MODEL.borrow_ref_mut(cs);
        model.init();
        say!(
            "mite-selftest: {} ({} steps on {} images)",
            mite_model::NAME,
            config::STEPS,
            count
        );
        let (image, _) = sample(0).ok_or("no image")?;

        // A bad label is refused before anything changes.
        let before = model.params_crc();
        match model.train_step(image, CLASSES as i32) {
            Err(Error::BadLabel { .. }) => {}
            _ => return Err("a label out of range was not refused"),
        }
        if model.params_crc() != before {
            return Err("a refused step changed the parameters");
        }

        let mut first = 0.0_f32;
        let mut last = 0.0_f32;
        let mut ticks = 0_u64;
        for step in 0..config::STEPS {
            let (image, label) = sample(step % count).ok_or("no image")?;
            let t0 = clock.now();
            // Odd steps take the image written into the model's input buffer.
            let result = if step % 2 == 1 {
                model.input_buffer().copy_from_slice(image);
                model.train_step_in_place(label)
            } else {
                model.train_step(image, label)
            };
            let loss = match result {
                Ok(loss) => loss,
                Err(_) => return Err("train_step failed"),
            };
            ticks += clock.since(t0);
            say!(
                "step {} label {} loss {:.6} ({:08x})",
                step,
                label,
                loss,
                loss.to_bits()
            );
            if step == 0 {
                first = loss;
            }
            last = loss;
        }
        if config::STEPS > 0 {
            say!(
                "time per step: {} {} (loss {:.6} -> {:.6})",
                ticks / config::STEPS as u64,
                C::UNIT,
                first,
                last
            );
        }

        let mut out = [Default::default(); OUTPUT_LEN];
        model.input_buffer().copy_from_slice(image);
        if model.infer_in_place(&mut out).is_err() {
            return Err("infer_in_place failed");
        }
        let in_place = out;
        if model.infer(image, &mut out).is_err() {
            return Err("infer failed");
        }
        if in_place.iter().map(|&v| mite_model::Bits::bits(v)).ne(out.iter().map(|&v| mite_model::Bits::bits(v))) {
            return Err("infer_in_place and infer differ");
        }
        let mut crc = 0_u32;
        for &v in out.iter() {
            crc = crc.rotate_left(5) ^ mite_model::Bits::bits(v);
        }
        say!("infer output hash: {:08x}", crc);
        say!("param-block crc: {:08x}", model.param_block_crc());

        // Save, refuse a corrupted image with nothing changed, restore the good one.
        if config::SAVE_SPACE >= SAVE_BYTES {
            let mut saved = SAVED.borrow_ref_mut(cs);
            let crc = model.params_crc();
            if model.save_params(&mut saved[..]) != Ok(SAVE_BYTES) {
                return Err("save_params failed");
            }
            saved[SAVE_BYTES / 2] ^= 1;
            if model.load_params(&saved[..]) != Err(Error::BadImage) {
                return Err("a corrupted image was accepted");
            }
            saved[SAVE_BYTES / 2] ^= 1;
            if model.load_params(&saved[..]).is_err() || model.params_crc() != crc {
                return Err("a saved image did not restore the parameters");
            }
            say!("save/load: {} bytes round trip", SAVE_BYTES);
        }
        say!("mite-selftest: ok params-crc {:08x}", model.params_crc());
        Ok(())
    })
}

/// Nanoseconds of the host's monotonic clock.
#[cfg(not(target_os = "none"))]
struct HostClock(std::time::Instant);

#[cfg(not(target_os = "none"))]
impl Clock for HostClock {
    const UNIT: &'static str = "ns (host)";
    fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn since(&self, t0: u64) -> u64 {
        self.now().wrapping_sub(t0)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    if let Err(why) = run(&HostClock(std::time::Instant::now())) {
        say!("mite-selftest: FAIL {}", why);
        std::process::exit(1);
    }
}

#[cfg(target_os = "none")]
mod device {
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::SYST;
    use cortex_m_rt::entry;
    use cortex_m_semihosting::debug;

    /// SysTick on the reference clock (1 MHz on QEMU's MPS2 boards: with `-icount shift=0`, one
    /// tick is 1000 instructions), counting down over 24 bits without interrupts.
    struct SysTickClock;

    impl super::Clock for SysTickClock {
        const UNIT: &'static str = "SysTick reference ticks";
        fn now(&self) -> u64 {
            u64::from(SYST::get_current())
        }
        fn since(&self, t0: u64) -> u64 {
            t0.wrapping_sub(self.now()) & 0x00FF_FFFF
        }
    }

    #[entry]
    fn main() -> ! {
        let Some(mut p) = cortex_m::Peripherals::take() else {
            say!("mite-selftest: FAIL no peripherals");
            debug::exit(debug::EXIT_FAILURE);
            loop {}
        };
        p.SYST.set_clock_source(SystClkSource::External);
        p.SYST.set_reload(0x00FF_FFFF);
        p.SYST.clear_current();
        p.SYST.enable_counter();
        let code = match super::run(&SysTickClock) {
            Ok(()) => debug::EXIT_SUCCESS,
            Err(why) => {
                say!("mite-selftest: FAIL {}", why);
                debug::EXIT_FAILURE
            }
        };
        debug::exit(code);
        loop {}
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        say!("mite-selftest: FAIL panic: {}", info);
        debug::exit(debug::EXIT_FAILURE);
        loop {}
    }
}
