global using ForkSim;
global using Tunnel.Device;
global using Xunit;
