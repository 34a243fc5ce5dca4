from aistack_kit.server import run

from aistack_platform.app import DEFAULT_PORT, PlatformCapability, targets_from_env

if __name__ == "__main__":
    run("platform", DEFAULT_PORT, lambda: PlatformCapability(targets_from_env()))
